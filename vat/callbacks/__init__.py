"""Lightning callbacks: the VAT evaluation callback and the SIGTERM checkpoint."""

from vat.callbacks.preemption import PreemptionCallback
from vat.callbacks.vat import VATCallback, curve_row

__all__ = ["PreemptionCallback", "VATCallback", "curve_row"]
