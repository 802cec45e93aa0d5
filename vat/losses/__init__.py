"""Training losses, as pure functions of tensors.

- `vat.losses.tokens`: the label convention (`IGNORE_INDEX`) and `sequence_logps`, the token
  log-probs every loss reads;
- `vat.losses.sft`: the SFT cross entropy;
- `vat.losses.preference`: the DPO family (DPO/cDPO, IPO, hinge, robust DPO, SimPO), the RPO
  combination with SFT, and the reward metrics.

Every public name is re-exported here, so configs name a loss as ``vat.losses.<name>`` (e.g.
``_target_: vat.losses.dpo_sigmoid_loss``) wherever its module is.
"""

from vat.losses.orpo import ORPOLossOutput, orpo_loss, orpo_metrics
from vat.losses.preference import (
    PreferenceLossOutput,
    dpo_sigmoid_loss,
    hinge_loss,
    ipo_loss,
    preference_metrics,
    preference_plus_sft,
    robust_dpo_loss,
    simpo_loss,
)
from vat.losses.sft import sft_loss
from vat.losses.tokens import IGNORE_INDEX, sequence_logps

__all__ = [
    "IGNORE_INDEX",
    "ORPOLossOutput",
    "PreferenceLossOutput",
    "dpo_sigmoid_loss",
    "hinge_loss",
    "ipo_loss",
    "orpo_loss",
    "orpo_metrics",
    "preference_metrics",
    "preference_plus_sft",
    "robust_dpo_loss",
    "sequence_logps",
    "sft_loss",
    "simpo_loss",
]
