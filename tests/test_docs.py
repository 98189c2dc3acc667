"""The documents quote the code, configs and committed tables faithfully (tests/docs_check.py),
and the check catches a planted stale number, a wrong default, a dead path and an unlisted
script."""

import docs_check
import pytest

README = (docs_check.REPO / "README.md").read_text()


def test_documents_match_the_code_configs_and_committed_tables():
    assert docs_check.run_checks() == []


@pytest.mark.parametrize(
    ("document", "old", "new", "complaint"),
    [
        # a stale demo number: the committed CSV's CWoLa signal for 5 sigma is 194
        (
            "README.md",
            "| CWoLa | 8.1 +- 1.6 | 194 +- 15 |",
            "| CWoLa | 8.1 +- 1.6 | 210 +- 15 |",
            "CWoLa signal_for_5sigma reads 210",
        ),
        ("README.md", "(AUC 0.31 for CWoLa)", "(AUC 0.32 for CWoLa)", "quickstart_metrics.json"),
        ("README.md", "16 by default", "8 by default", "method.chunk_size"),
        ("README.md", "docs/cwola.md", "docs/cwola_learning.md", "docs/cwola_learning.md"),
        (
            "docs/INTERFACES.md",
            "`jaxws.train.resume.map_chunks",
            "`jaxws.train.resume.map_chunk_list",
            "no map_chunk_list in",
        ),
        # a README paragraph copied into a document of docs/
        (
            "docs/own_events.md",
            "# Your own events",
            "# Your own events\n\nBelow its learning threshold the CWoLa cut costs "
            "significance; above it the cut gains.\n",
            "both say",
        ),
        # a bench section without the commit that recorded it
        ("bench/README.md", " [commit aafcc1d]", "", "names no [commit"),
        # a module path in a code block (no backticks) that a package replaced
        (
            "docs/meta_learning.md",
            "from jaxws.methods.meta.inner import Task",
            "from jaxws.methods.meta_inner import Task",
            "names jaxws.methods.meta_inner",
        ),
        ("experiments/README.md", "- `tpc_vs_nest.py`", "- `tpc_vs_nest_old.py`", "tpc_vs_nest"),
        (
            "docs/results/paper_luminosity/README.md",
            "| MTL | 3.6 +- 0.2 | 654 +- 23 |",
            "| MTL | 3.6 +- 0.2 | 640 +- 23 |",
            "lacks the row '| paper luminosity, simulator (25k) | MTL | 3.6 +- 0.2 | 654 +- 23",
        ),
    ],
)
def test_the_check_fails_on_planted_drift(document, old, new, complaint):
    text = (docs_check.REPO / document).read_text()
    assert old in text
    problems = docs_check.run_checks({document: text.replace(old, new, 1)})
    assert problems
    assert any(complaint in problem for problem in problems), problems
