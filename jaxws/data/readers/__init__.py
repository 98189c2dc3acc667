"""Your own events in: numpy arrays, awkward arrays, ROOT files and plain HDF5 files.

Each reader turns its input into the event schema (`jaxws.data.events.JetEvents`); ROOT files
are read with uproot.

Dense inputs (numpy mappings, HDF5 files) use the schema's own names and shapes:

| dataset          | shape        | required | meaning                                           |
| ---------------- | ------------ | -------- | ------------------------------------------------- |
| `constituents`   | (N, 2, C, 3) | yes      | leading [0] and subleading [1] jet; per           |
|                  |              |          | constituent pT [GeV], deta, dphi relative to the  |
|                  |              |          | jet axis; zero pT = padding (sorted on read)      |
| `jets`           | (N, 2, 4)    | yes      | jet pT [GeV], eta, phi [rad], mass [GeV]          |
| `mjj`            | (N,)         | yes      | dijet invariant mass [GeV]                        |
| `region`         | (N,)         | yes      | 0 signal region, 1 sideband, -1 neither           |
| `n_constituents` | (N, 2)       | no       | count before truncation; default: constituents    |
|                  |              |          | with pT > 0                                       |
| `label`          | (N,)         | no       | 0 background, 1 signal; default: `label` argument |
| `model_id`       | (N,)         | no       | signal model index, -1 background; default: the   |
|                  |              |          | `model_id` argument (-1 for label 0, else 0)      |

Columnar inputs (awkward arrays, ROOT TTrees) hold one entry per event with flat branches;
`j` is 0 for the leading and 1 for the subleading jet:

| branch                                                   | type          | required |
| -------------------------------------------------------- | ------------- | -------- |
| `mjj`, `region`                                          | number        | yes      |
| `jet{j}_pt`, `jet{j}_eta`, `jet{j}_phi`, `jet{j}_mass`   | number        | yes      |
| `jet{j}_constituent_pt`, `_deta`, `_dphi`                | var * number  | yes      |
| `jet{j}_n_constituents`, `label`, `model_id`             | number        | no       |

`branches` maps these names to yours (e.g. `{"mjj": "Mjj"}`). A ROOT file stores one level of
jaggedness per branch (uproot writes exactly that), hence one constituent branch per jet.

Every reader returns events whose constituents are sorted by pT descending (stable) and
zero-padded to C (the longest list, or `max_constituents` when given: then the hardest C are
kept and `n_constituents` keeps the full count). A missing field, a wrong shape, NaN or inf, a
negative pT or a region, label outside its values is refused with an `EventsError` naming it.
"""

from __future__ import annotations

from jaxws.data.readers.arrays import (
    _SHAPES as _SHAPES,
)
from jaxws.data.readers.arrays import (
    CONSTITUENT_COLUMNS,
    JET_COLUMNS,
    OPTIONAL,
    REQUIRED,
    EventsError,
    columnar_names,
    events_from_arrays,
)
from jaxws.data.readers.arrays import (
    _shape_ok as _shape_ok,
)
from jaxws.data.readers.arrays import (
    _sort_constituents as _sort_constituents,
)
from jaxws.data.readers.columnar import (
    _column as _column,
)
from jaxws.data.readers.columnar import (
    events_from_awkward,
    events_to_awkward,
    read_root,
    write_root,
)
from jaxws.data.readers.hdf5 import (
    read_hdf5,
    write_hdf5,
)
from jaxws.data.readers.source import (
    EventsConfig,
    EventsSource,
)

__all__ = [
    "CONSTITUENT_COLUMNS",
    "JET_COLUMNS",
    "OPTIONAL",
    "REQUIRED",
    "EventsConfig",
    "EventsError",
    "EventsSource",
    "columnar_names",
    "events_from_arrays",
    "events_from_awkward",
    "events_to_awkward",
    "read_hdf5",
    "read_root",
    "write_hdf5",
    "write_root",
]
