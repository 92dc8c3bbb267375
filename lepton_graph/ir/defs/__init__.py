"""Op definitions, one module per family; importing this package fills the registry."""

from . import (  # noqa: F401
    attention,
    conv,
    creation,
    elementwise,
    fallback,
    linalg,
    norm,
    quant,
    reduction,
    shape,
    symbolic,
)
