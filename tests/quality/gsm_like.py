# ruff: noqa: SIM905, E501  (word lists and code bodies read best as they are)
"""GSM8K-like and CodeAlpaca-like records, made here (no download), for decontamination.

:func:`math_problems` writes grade-school word problems in GSM8K's shape: a
``question`` and an ``answer`` whose steps carry the calculator annotations
(``48/2 = <<48/2=24>>24``) and end with ``#### 24``. The numbers are small, as in
GSM8K, so the same formulas recur across different problems: the boilerplate that
makes punctuation-counting n-grams match everything. The stories vary (names, items,
places, openers) so that two different problems do not share a long run of words.

:func:`code_snippets` writes small Python functions that share the usual boilerplate
(``for i in range(1, n + 1):``, ``if __name__ == "__main__":``) but do different
things.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator

NAMES = """Natalia Weng Betty Julie James Albert Randy Joy Mark Mary Tina Carla Gary
Ken Alexis Jasmine Samantha Brian Maddie Tom Lisa Ahmed Priya Kofi Mateo Yuki Olga
Liam Emma Noah Ava Lucas Mia Ethan Zoe Omar Lena Ivan Sofia Diego Hana Felix Nora
Hugo Ines Raj Tara Leo Ada Max""".split()
ITEMS = """apples clips stickers marbles cookies pencils books shells cupcakes stamps
cards beads balloons muffins tickets crayons pebbles coins candles bracelets toys
lemons peaches eggs rolls bottles jars notebooks erasers plates cups bowls socks
ribbons flowers seeds plants posters magnets""".split()
SURNAMES = """Smith Garcia Chen Okafor Novak Silva Kim Rossi Jensen Haddad Murphy Tanaka
Kowalski Dubois Mensah Petrov Larsen Costa Nguyen Fischer Ortiz Singh Ali Brown Moreau
Sato Ivanova Lopez Weber Khan""".split()
ADJECTIVES = """red blue green small large striped shiny wooden glass paper homemade
fresh old new tiny giant golden silver spotted round square sweet sour plain fancy
rare""".split()
CROPS = "tomato lettuce pepper bean carrot onion melon cabbage pumpkin squash radish corn".split()
GROUPS = """friends classmates neighbours teammates cousins coworkers customers
visitors""".split()
JOBS = ["babysitting", "tutoring", "walking dogs", "gardening", "painting fences",
        "washing cars", "mowing lawns", "delivering papers", "cleaning windows"]  # fmt: skip
CONTAINERS = "boxes bags baskets crates jars packs trays cartons buckets tins".split()
PLACES = ["the market", "the fair", "the library", "the park", "the bakery", "school",
          "the farm", "the beach", "the museum", "the zoo", "a garage sale", "the harbour"]  # fmt: skip
MONTHS = "January February March April May June July August September October".split()
OPENERS = [
    "",
    "On a rainy weekend, ",
    "For the spring festival, ",
    "Last summer, ",
    "During the school holidays, ",
    "To raise money for charity, ",
    "Before the big game, ",
    "At the end of the season, ",
    "While visiting relatives, ",
    "As part of a class project, ",
]
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _calc(a: int, op: str, b: int) -> tuple[str, int]:
    value = OPS[op](a, b) if op != "/" else a // b
    return f"{a}{op}{b} = <<{a}{op}{b}={value}>>{value}", value


_CHOICE = re.compile(r"\[([^\[\]]*\|[^\[\]]*)\]")


def _say(r: random.Random, template: str, **slots: object) -> str:
    """``template`` with each ``[a|b|c]`` replaced by one of its words, then the slots
    filled: people phrase the same problem in many ways."""
    return _CHOICE.sub(lambda m: r.choice(m.group(1).split("|")), template).format(**slots)


Problem = Callable[[random.Random], tuple[str, str]]


def _person(r: random.Random) -> str:
    return f"{r.choice(NAMES)} {r.choice(SURNAMES)}"


def _thing(r: random.Random) -> str:
    return f"{r.choice(ADJECTIVES)} {r.choice(ITEMS)}"


def _halves(r: random.Random) -> tuple[str, str]:
    name, item = _person(r), _thing(r)
    m1, m2 = r.sample(MONTHS, 2)
    a = 2 * r.randint(2, 30)
    half, b = _calc(a, "/", 2)
    total, c = _calc(a, "+", b)
    q = _say(
        r,
        "{o}{name} [sold|handed out|gave away|traded] {item} to {a} {group} in {m1}, and "
        "[then|later] {name} [sold|handed out|gave away] half as many {item} in {m2}. How "
        "many {item} did {name} [sell|hand out|give away] [altogether|in total|in all]?",
        o=r.choice(OPENERS),
        name=name,
        item=item,
        a=a,
        m1=m1,
        m2=m2,
        group=r.choice(GROUPS),
    )
    a_ = _say(
        r,
        "[In {m2}|During {m2}], {name} [sold|gave] {half} {item}.\n[Altogether|In total|"
        "Over both months], {name} [sold|gave] {total} {item}.\n#### {c}",
        name=name,
        item=item,
        m2=m2,
        half=half,
        total=total,
        c=c,
    )
    return q, a_


def _packs(r: random.Random) -> tuple[str, str]:
    name, item, box = _person(r), _thing(r), r.choice(CONTAINERS)
    n, per, given = r.randint(2, 9), r.randint(2, 12), r.randint(1, 9)
    have, h = _calc(n, "*", per)
    left, x = _calc(h, "-", given)
    friend = _person(r)
    q = _say(
        r,
        "{o}{name} [buys|picks up|orders|brings home] {n} {box} of {item} [at|from] "
        "{place}. [Each|Every] one of the {box} [holds|contains|has] {per} {item}. {name} "
        "[gives|donates|hands] {given} {item} to {friend}. How many {item} does {name} "
        "[have left|still have|keep]?",
        o=r.choice(OPENERS),
        name=name,
        item=item,
        box=box,
        n=n,
        per=per,
        given=given,
        place=r.choice(PLACES),
        friend=friend,
    )
    a_ = _say(
        r,
        "[{name} has|{name} starts with|{name} buys] {have} {item}.\n[After giving some "
        "to {friend}|After the gift to {friend}], {name} [keeps|has] {left} {item}.\n#### {x}",
        name=name,
        item=item,
        have=have,
        left=left,
        x=x,
        friend=friend,
    )
    return q, a_


def _wage(r: random.Random) -> tuple[str, str]:
    name = _person(r)
    rate, hours, days = r.randint(8, 20), r.randint(2, 8), r.randint(2, 7)
    daily, d = _calc(rate, "*", hours)
    total, t = _calc(d, "*", days)
    job = r.choice(JOBS)
    boss = _person(r)
    q = _say(
        r,
        "{o}{name} [earns|makes|is paid|gets] ${rate} [an|per|every] hour for {job} for "
        "{boss}. {name} [works|spends] {hours} hours a day {job} for {boss} for {days} "
        "days. How much [money|cash] does {boss} [pay|owe|give] {name}?",
        o=r.choice(OPENERS),
        name=name,
        rate=rate,
        job=job,
        hours=hours,
        days=days,
        boss=boss,
    )
    a_ = _say(
        r,
        "[Each|Every|In one] day {name} [earns|makes] {daily} dollars {job}.\n[In|Over|"
        "After] {days} days {boss} [pays|owes] {name} {total} dollars.\n#### {t}",
        name=name,
        daily=daily,
        days=days,
        total=total,
        t=t,
        job=job,
        boss=boss,
    )
    return q, a_


def _garden(r: random.Random) -> tuple[str, str]:
    name = _person(r)
    beds, plants, eaten = r.randint(2, 8), r.randint(3, 12), r.randint(1, 10)
    grown, g = _calc(beds, "*", plants)
    left, x = _calc(g, "-", eaten) if g > eaten else _calc(g, "+", eaten)
    crop = f"{r.choice(ADJECTIVES)} {r.choice(CROPS)}"
    pest = r.choice(["rabbits", "deer", "snails", "birds", "slugs", "squirrels", "goats"])
    q = _say(
        r,
        "{o}{name} [plants|sets out|fills] {beds} [beds|rows|plots] with {plants} {crop} "
        "[plants|seedlings] [each|in each|apiece]. [Later,|Overnight,|Sadly,] the {pest} "
        "of {name} [eat|ruin|destroy|trample] {eaten} {crop} [plants|seedlings]. How many "
        "{crop} [plants|seedlings] does {name} [have now|still have|keep]?",
        o=r.choice(OPENERS),
        name=name,
        beds=beds,
        plants=plants,
        crop=crop,
        pest=pest,
        eaten=eaten,
    )
    a_ = _say(
        r,
        "{name} [planted|started with] {grown} {crop} [plants|seedlings].\n[Now|After the "
        "{pest}|In the end] {name} has {left} {crop} [plants|seedlings].\n#### {x}",
        name=name,
        grown=grown,
        left=left,
        pest=pest,
        x=x,
        crop=crop,
    )
    return q, a_


PROBLEMS: list[Problem] = [_halves, _packs, _wage, _garden]


def math_problems(count: int, seed: int) -> Iterator[dict[str, str]]:
    """``count`` GSM8K-like records ``{"question", "answer"}``, deterministic for a seed."""
    r = random.Random(seed)
    for _ in range(count):
        question, answer = r.choice(PROBLEMS)(r)
        yield {"question": question, "answer": answer}


FUNCTIONS = [
    ("sum_to", "total = 0\n    for i in range(1, n + 1):\n        total += i\n    return total"),
    ("factorial", "result = 1\n    for i in range(1, n + 1):\n        result *= i\n    return result"),
    ("count_even", "count = 0\n    for i in range(1, n + 1):\n        if i % 2 == 0:\n            count += 1\n    return count"),
    ("squares", "return [i * i for i in range(1, n + 1)]"),
    ("fizz", "out = []\n    for i in range(1, n + 1):\n        out.append('fizz' if i % 3 == 0 else str(i))\n    return out"),
    ("is_prime", "if n < 2:\n        return False\n    for i in range(2, int(n ** 0.5) + 1):\n        if n % i == 0:\n            return False\n    return True"),
    ("reverse_words", "words = text.split()\n    return ' '.join(reversed(words))"),
    ("max_item", "best = items[0]\n    for x in items[1:]:\n        if x > best:\n            best = x\n    return best"),
]  # fmt: skip


def code_snippets(count: int, seed: int) -> Iterator[dict[str, str]]:
    """CodeAlpaca-like ``{"instruction", "output"}`` records: one small function each,
    under a varying name, with the usual ``main`` boilerplate."""
    r = random.Random(seed)
    for i in range(count):
        base, body = r.choice(FUNCTIONS)
        name = f"{base}_{r.choice(['v', 'fn', 'impl', 'calc', 'do'])}{i}"
        arg = "text" if "text" in body else "items" if "items" in body else "n"
        code = (
            f"import sys\n\n\ndef {name}({arg}):\n    {body}\n\n\n"
            f'if __name__ == "__main__":\n    print({name}(sys.argv[1]))\n'
        )
        yield {"instruction": f"Write a Python function {name}.", "output": code}
