"""README table "jaxws against the paper": every cell read from a committed thresholds.csv.

    python experiments/paper_table.py            # prints the markdown table
Rows: the demo (`make demo`, docs/figures/quickstart_thresholds.csv) and the paper-luminosity
runs (`bash experiments/paper_luminosity.sh NAME`, docs/results/paper_luminosity/NAME/); a
run not yet committed is left out. Errors are bootstrap standard deviations over the
pseudo-experiments (jaxws.stats.thresholds).
"""

import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER = {  # arXiv:2312.06152 secs. 3-5 (25x25 to 75x75, Table 2 CNN, 25k SR background)
    "CWoLa": ("2-4", "", "1"),
    "Transfer": ("lower", "", "1/few ('a factor of a few')"),
    "MTL": ("lower", "", "below transfer ('not drastically')"),
}
RUNS = [
    ("demo, simulator (1k)", ROOT / "docs/figures/quickstart_thresholds.csv", None),
    *(
        (f"paper luminosity, {name} (25k)", path / "thresholds.csv", path / "config.json")
        for name, path in (
            ("simulator", ROOT / "docs/results/paper_luminosity/simulator"),
            ("simulator DD", ROOT / "docs/results/paper_luminosity/simulator_dd"),
            ("Pythia", ROOT / "docs/results/paper_luminosity/pythia"),
        )
    ),
]


def cell(value: str, error: str, digits: int) -> str:
    if value in ("", "nan"):
        return "not reached"
    return f"{float(value):.{digits}f} +- {float(error):.{digits}f}"


def main() -> None:
    print("| study | method | threshold (initial Z) | signal for 5 sigma | ratio to CWoLa |")
    print("| --- | --- | --- | --- | --- |")
    for method, (threshold, _, ratio) in PAPER.items():
        print(f"| paper (Figs. 3-5) | {method} | {threshold} | | {ratio} |")
    for label, path, config in RUNS:
        if not path.exists():
            continue
        if config is not None:
            study = json.loads(config.read_text())["study"]
            assert study["n_background_sr"] == 25000, f"{config}: not the paper's luminosity"
        for row in csv.DictReader(path.open()):
            threshold = cell(row["threshold_z"], row["threshold_z_std"], 1)
            signal = cell(row["signal_for_5sigma"], row["signal_for_5sigma_std"], 0)
            ratio = (
                ""
                if row["ratio_to_cwola"] in ("", "nan")
                else f"{float(row['ratio_to_cwola']):.2f}"
            )
            print(f"| {label} | {row['method']} | {threshold} | {signal} | {ratio} |")


if __name__ == "__main__":
    main()
