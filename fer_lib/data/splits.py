"""Speaker-independent splits of RAVDESS: by actor, sorted and fixed, never random, never by clip.

A clip-level random split puts the same actor (and the 01/02/03 formats of the same performance)
on both sides and inflates accuracy enormously (95.8% vs 48.1% in one paper): it is not offered.

Fixed split (`fixed_split`, the default when no fold is given). With all 24 actors:

    test  = 21, 22, 23, 24   (21, 23 male; 22, 24 female)
    val   = 17, 18, 19, 20   (17, 19 male; 18, 20 female)
    train = 1 .. 16          (8 male, 8 female)

Rule, for any set of available actors: split them by gender (odd = male, even = female), sorted;
k = max(1, round(n / 6)) with n the smaller gender count; test = the last k of each gender, val =
the k before those, train = the rest. With fewer than 3 actors of a gender the split is made on
the sorted actors regardless of gender (test = last k, val = the k before, k = max(1, round(N / 6))).
At least 3 actors are needed.

K-fold (`kfold_splits`, default 6 folds, as HiCMAE): fold i holds out the actors with IDs
4i+1 .. 4i+4 for test: 1-4, 5-8, 9-12, 13-16, 17-20, 21-24, the folds published results use
(HiCMAE-B: WAR 87.99 / UAR 87.96). HiCMAE validates on its test fold; here validation is a separate
part of the training actors: the actors that follow the test group (cyclically), k of each gender
(k as above: 2 + 2 with 20 training actors). So fold 0 = test 1-4, val 5-8, train 9-24, and
fold 5 = test 21-24, val 1-4, train 5-20.
When only some actors are present and every ID group still has one, the same ID groups are used;
otherwise (small synthetic sets) the sorted available actors are cut into `n_folds` consecutive
groups. Name the folds with every figure: numbers from other fold schemes are not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from fer_lib.data.index import DataError
from fer_lib.data.ravdess import ALL_ACTORS, NUM_ACTORS, actor_ranges

DEFAULT_FOLDS = 6


class SplitError(DataError):
    """The actors available cannot make the split asked for."""


@dataclass(frozen=True)
class Split:
    name: str  # "fixed" | "fold k/n"
    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def parts(self) -> dict[str, tuple[int, ...]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def part_of(self, actor: int) -> Optional[str]:
        for part, actors in self.parts().items():
            if actor in actors:
                return part
        return None

    def as_dict(self) -> dict:
        """JSON-ready (store it with every checkpoint)."""
        return {"name": self.name, **{k: list(v) for k, v in self.parts().items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "Split":
        return cls(name=data["name"], train=tuple(data["train"]), val=tuple(data["val"]), test=tuple(data["test"]))

    def describe_part(self, part: str) -> str:
        """'test actors 21-24 · fold 5/6 of the actor k-fold (HiCMAE's ...)': what every figure is titled with.

        `part`: train, val, test, or all (every actor of the split: not a held-out score).
        """
        if part == "all":
            actors = sorted(a for p in self.parts().values() for a in p)
            return f"all cached clips, actors {actor_ranges(actors)} (includes the training actors: not a held-out score)"
        actors = sorted(self.parts()[part])
        who = f"{part} actor{'s' if len(actors) != 1 else ''} {actor_ranges(actors)}"
        if self.name == "fixed":
            return f"{who} · fixed actor split"
        hicmae = len(actors) == 4 and actors[0] % 4 == 1 and actors == list(range(actors[0], actors[0] + 4))
        return f"{who} · {self.name} of the actor k-fold" + (" (HiCMAE's folds of 4 consecutive actors)" if hicmae else "")

    def describe(self) -> str:
        lines = [f"split {self.name}:"]
        for part, actors in self.parts().items():
            males = sum(a % 2 for a in actors)
            lines.append(f"  {part:<5} {len(actors):>2} actors ({males} m, {len(actors) - males} f): "
                         + ", ".join(f"{a:02d}" for a in actors))
        return "\n".join(lines)

    def check(self) -> "Split":
        """Raise SplitError unless the parts are non-empty and share no actor."""
        parts = self.parts()
        for part, actors in parts.items():
            if not actors:
                raise SplitError(f"split {self.name}: the {part} part has no actor")
        seen: dict[int, str] = {}
        for part, actors in parts.items():
            for a in actors:
                if a in seen:
                    raise SplitError(f"split {self.name}: actor {a:02d} is in both {seen[a]} and {part}")
                seen[a] = part
        return self


def _actors(actors: Optional[Iterable[int]]) -> list[int]:
    out = sorted({int(a) for a in (ALL_ACTORS if actors is None else actors)})
    bad = [a for a in out if not 1 <= a <= NUM_ACTORS]
    if bad:
        raise SplitError(f"actor ids must lie in 1..{NUM_ACTORS}, got {bad}")
    return out


def _per_gender(n: int) -> int:
    return max(1, round(n / 6))


def fixed_split(actors: Optional[Iterable[int]] = None) -> Split:
    """The default train/val/test split of the available actors (module docstring)."""
    actors = _actors(actors)
    if len(actors) < 3:
        raise SplitError(f"a train/val/test split needs at least 3 actors, found {len(actors)}: "
                         f"{', '.join(f'{a:02d}' for a in actors) or 'none'}")
    males, females = [a for a in actors if a % 2], [a for a in actors if not a % 2]
    if len(males) >= 3 and len(females) >= 3:
        k = _per_gender(min(len(males), len(females)))
        test = males[-k:] + females[-k:]
        val = males[-2 * k : -k] + females[-2 * k : -k]
    else:
        k = _per_gender(len(actors))
        test, val = actors[-k:], actors[-2 * k : -k]
    held = set(test) | set(val)
    return Split("fixed", tuple(a for a in actors if a not in held), tuple(sorted(val)), tuple(sorted(test))).check()


def fold_groups(actors: Optional[Iterable[int]] = None, n_folds: int = DEFAULT_FOLDS) -> list[tuple[int, ...]]:
    """The test group of each fold (module docstring)."""
    actors = _actors(actors)
    if n_folds < 2:
        raise SplitError(f"n_folds must be at least 2, got {n_folds}")
    if len(actors) < max(n_folds, 3):
        raise SplitError(f"{n_folds} folds need at least {max(n_folds, 3)} actors (one test group per fold, and "
                         f"val and train actors besides), found {len(actors)}")
    if NUM_ACTORS % n_folds == 0:
        size = NUM_ACTORS // n_folds
        groups = [tuple(a for a in actors if (a - 1) // size == k) for k in range(n_folds)]
        if all(groups):
            return groups
    base, extra = divmod(len(actors), n_folds)
    groups, start = [], 0
    for k in range(n_folds):
        size = base + (1 if k < extra else 0)
        groups.append(tuple(actors[start : start + size]))
        start += size
    return groups


def kfold_splits(actors: Optional[Iterable[int]] = None, n_folds: int = DEFAULT_FOLDS) -> list[Split]:
    """One Split per fold: test = the fold's actor group, val = the following actors, k per gender."""
    actors = _actors(actors)
    groups = fold_groups(actors, n_folds)
    splits = []
    for i, test in enumerate(groups):
        rest = [a for a in actors if a not in test]
        after = [a for a in rest if a > max(test)] + [a for a in rest if a < max(test)]  # cyclic, from the test group on
        males, females = [a for a in after if a % 2], [a for a in after if not a % 2]
        if len(males) >= 3 and len(females) >= 3:
            k = _per_gender(min(len(males), len(females)))
            val = males[:k] + females[:k]
        else:
            val = after[: _per_gender(len(after))]
        train = tuple(a for a in rest if a not in val)
        splits.append(Split(f"fold {i}/{n_folds}", train, tuple(sorted(val)), tuple(sorted(test))).check())
    return splits


def get_split(fold: Optional[int] = None, actors: Optional[Iterable[int]] = None, n_folds: int = DEFAULT_FOLDS) -> Split:
    """`fold=None`: the fixed split; `fold=k`: the k-th of `n_folds` actor folds (TrainConfig.fold)."""
    if fold is None:
        return fixed_split(actors)
    splits = kfold_splits(actors, n_folds)
    if not 0 <= fold < len(splits):
        raise SplitError(f"fold must be in 0..{len(splits) - 1}, got {fold}")
    return splits[fold]


def describe_splits(actors: Optional[Iterable[int]] = None, n_folds: int = DEFAULT_FOLDS, verbose: bool = True) -> dict:
    """Print (and return as a dict) the actors of every part of the fixed split and of each fold."""
    fixed = fixed_split(actors)
    result: dict = {"fixed": fixed.as_dict()}
    try:
        folds = kfold_splits(actors, n_folds)
        result["folds"] = [s.as_dict() for s in folds]
    except SplitError as exc:
        folds, result["folds"] = None, str(exc)
    if verbose:
        print(fixed.describe())
        if folds is None:
            print(f"k-fold: {result['folds']}")
        else:
            for s in folds:
                print(s.describe())
    return result
