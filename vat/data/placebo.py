"""Placebo training data: the same budget and format as a real intervention, toward no value.

A tax measured once, against nothing, cannot say how much of it is the value and how much is any
fine-tuning at all (the model learning the register of the chosen actions, the chat format, the
learning-rate schedule). A placebo runs the same method for the same steps on data of the same
size and format that carries no value direction; the tax *net of the placebo* is what the value
did. The three kinds (selected with ``method.train_data``):

- ``shuffled`` (DPO): the target's own pairs with chosen and rejected swapped in a random half of
  them (seeded). Prompts, responses and token counts are exactly the real run's; only the
  direction is gone: half the pairs pull toward the value, half away.
- ``mixed`` (DPO): as many pairs as the target has, drawn evenly from all ten values' train pairs
  (seeded), chosen = express as in the real run. It moves "express over suppress" in general:
  the real run net of it is what is specific to the target value.
- ``neutral`` (SFT): the target's express items with each action replaced by a value-neutral
  first-person action (`NEUTRAL_ACTIONS`: routine acts that express no Schwartz value) of the
  closest length in words, under the same scene prompt.

Only train-split items are read, as for the real data.
"""

from __future__ import annotations

import random
from dataclasses import replace

from vat.data.items import ItemSet
from vat.data.schema import Item

TRAIN_DATA = ("target", "shuffled", "mixed", "neutral")
PREFERENCE_KINDS = ("target", "shuffled", "mixed")
SFT_KINDS = ("target", "neutral")

#: Routine first-person actions, 15-27 words, that express none of the ten values: no helping or
#: harming anyone, no rule kept or broken, no risk, pleasure, status or tradition at stake.
NEUTRAL_ACTIONS = (
    "I check the time on the wall clock and write the date at the top of a fresh page.",
    "I put the pen back in the cup on the desk and move the stapler slightly to the left.",
    "I open the window halfway, look at the grey sky for a moment, and then sit back down.",
    "I fold the printed page in half, slide it into a brown envelope, and set it on the table.",
    "I refill my glass with tap water, drink half of it, and place the glass beside the laptop.",
    "I read the scenario a second time, underline the place names, and count how many people are mentioned.",
    "I sort the papers on the table into two piles by size and square their edges against the desk.",
    "I switch the desk lamp on, adjust its neck so the light falls on the page, and keep reading.",
    "I write a list of the items mentioned so far on a sticky note and press it onto the monitor.",
    "I look up the distance between the two towns on a map and note it in kilometres and in miles.",
    "I tap the spacebar to wake the screen, check the battery level, and plug the charger into the wall.",
    "I copy the address from the letter into my phone's notes, checking each digit of the postcode twice.",
    "I take the umbrella off the hook, shake out the drops from this morning, and lean it by the door.",
    "I measure the length of the table with a tape measure and write the number on the back of an envelope.",
    "I count the chairs in the room, then count them again, and write the total at the bottom of my list.",
    "I rinse the coffee mug at the sink, dry it with the blue towel, and put it back on the second shelf.",
    "I set a timer for ten minutes on my phone and put the phone face down on the corner of the desk.",
    "I flip through the calendar to next month, note which day the first Monday falls on, and flip back.",
    "I look at the weather forecast for the week, see that Thursday will be cloudy, and close the app again.",
    "I sharpen the pencil over the bin, blow the shavings off its tip, and put it next to the notebook.",
    "I rearrange the files on my screen into alphabetical order and rename one that has a spelling mistake in it.",
    "I wind the cable of my headphones into a loose loop, tuck the end in, and drop them into the drawer.",
    "I read the label on the box of printer paper, check the sheet size, and load a stack into the tray.",
    "I walk to the end of the corridor, glance at the notice board, and walk back to my desk at the same pace.",
    "I check whether the dates in the scenario fall on weekdays and write the names of the days beside them in pencil.",
    "I note the number of words in the first paragraph, then in the second, and compare the two counts on scrap paper.",
    "I wipe the dust off the keyboard with a dry cloth, shake the cloth out over the bin, and put it away.",
    "I turn the page of the notebook, draw a straight line across the top with a ruler, and write a heading above it.",
    "I check the spelling of the town's name in an atlas, correct one letter in my notes, and close the atlas.",
    "I change the font size of the document from eleven to twelve points and scroll back up to the first line.",
    "I look out at the car park, count how many cars are parked in the first row, and return to the page.",
    "I hang my jacket on the back of the chair, straighten the collar, and pull the chair a little closer to the desk.",
    "I replace the empty roll of tape in the dispenser with a new one from the cupboard and press the end down flat.",
    "I check that the clock on my laptop matches the one on my phone, find they differ by a minute, and set them equal.",
    "I type the scenario's key numbers into a spreadsheet, one per cell in the first column, and save the file under today's date.",
    "I close the unused tabs in the browser one by one, leaving only the page with the map, and lower the screen brightness.",
    "I write the names of the places in the scenario on index cards, shuffle the cards once, and lay them out in a row on the table.",
    "I fetch a second chair from the next room, place it by the window, and put the box of files on its seat for now.",
    "I read the small print at the bottom of the form, note the reference number printed there, and copy it into the subject line of an email draft.",
    "I empty the paper tray of the printer, tap the sheets into a neat stack on the desk, and put them back in the tray face down.",
)


def shuffled_pairs(
    pairs: list[tuple[Item, Item]], seed: int
) -> tuple[list[tuple[Item, Item]], list[bool]]:
    """The pairs with (chosen, rejected) swapped in a random half of them; also which were swapped.

    Exactly ``len(pairs) // 2`` pairs are swapped (a seeded choice), so the placebo's preference
    direction is balanced by construction rather than only in expectation.
    """
    rng = random.Random(f"shuffled-{seed}")
    swap = set(rng.sample(range(len(pairs)), len(pairs) // 2))
    flags = [i in swap for i in range(len(pairs))]
    return [(r, c) if s else (c, r) for (c, r), s in zip(pairs, flags, strict=True)], flags


def mixed_pairs(
    items: ItemSet, n: int, seed: int, exclude: tuple[str, ...] = (), kind: str = "mixed"
) -> list[tuple[Item, Item]]:
    """`n` train pairs drawn evenly from every value (round robin over seeded per-value orders).

    ``exclude`` leaves values out (the anchor pairs of tax-aware DPO: every value but the target,
    `vat.anchor`); ``kind`` names the draw in the seed and in errors, so that the placebo's and the
    anchors' draws are independent."""
    rng = random.Random(f"{kind}-{seed}")
    pools = []
    for v in items.values():
        if v in exclude:
            continue
        pool = items.train(v).pairs()
        rng.shuffle(pool)
        if pool:
            pools.append(pool)
    if not pools:
        raise ValueError(f"{kind} pairs: the train split has no (express, suppress) pairs")
    rng.shuffle(pools)  # which values give the extra pair when n is not a multiple of 10
    out, k = [], 0
    while len(out) < n:
        pool = pools[k % len(pools)]
        if k // len(pools) < len(pool):
            out.append(pool[k // len(pools)])
        k += 1
        if k > n * len(pools) + sum(map(len, pools)):
            raise ValueError(f"{kind} pairs: the train split has fewer than {n} pairs")
    return out


def neutral_items(items: list[Item], seed: int) -> list[Item]:
    """`items` with each action replaced by a `NEUTRAL_ACTIONS` entry of the closest word count.

    Each reuse of an entry costs it 4 words of closeness, so the placebo sees many distinct
    responses while staying length-matched; ties break in a seeded order.
    """
    rng = random.Random(f"neutral-{seed}")
    pool = list(NEUTRAL_ACTIONS)
    rng.shuffle(pool)
    used: dict[str, int] = dict.fromkeys(pool, 0)
    out = []
    for it in items:
        n = len(it.action.split())
        best = min(pool, key=lambda a: abs(len(a.split()) - n) + 4 * used[a])
        used[best] += 1
        out.append(replace(it, id=f"{it.id}#neutral", action=best))
    return out


def names_a_value(text: str, taxonomy) -> str | None:
    """The first value or micro-value label of ``taxonomy`` in `text` (whole words, any case)."""
    import re

    names = [v.label for v in taxonomy.values] + [m.label for m in taxonomy.micro]
    low = text.lower()
    for name in names:
        if re.search(r"\b" + re.escape(name.lower()) + r"\b", low):
            return name
    return None
