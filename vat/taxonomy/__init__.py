"""Value systems as objects: `Taxonomy` (values, micro-values, groups, structure) and its loader.

Every part of the pipeline that needs to know the values (data loading and splits, probes and
prompts, `compute_vat`, the VAT callback, reports and figures) is *given* a `Taxonomy`; no module
outside this package names a value or assumes how many there are. Bundled definitions live in
``definitions/`` (Schwartz, the default; Moral Foundations); ``conf/taxonomy/`` picks one.
"""

from vat.taxonomy.load import (
    DEFAULT_TAXONOMY,
    TaxonomyError,
    available,
    definitions_dir,
    from_dict,
    load_taxonomy,
)
from vat.taxonomy.lookup import display_label, parent_value, taxonomy_named
from vat.taxonomy.model import (
    Circle,
    Clusters,
    MicroValue,
    Taxonomy,
    UnknownValueError,
    Value,
    canonical,
)

__all__ = [
    "DEFAULT_TAXONOMY",
    "Circle",
    "Clusters",
    "MicroValue",
    "Taxonomy",
    "TaxonomyError",
    "UnknownValueError",
    "Value",
    "available",
    "canonical",
    "definitions_dir",
    "display_label",
    "from_dict",
    "load_taxonomy",
    "parent_value",
    "taxonomy_named",
]
