"""Option combinations to bake: every pair of option values appears at least once."""

from __future__ import annotations

import itertools

OPTIONS: dict[str, list] = {
    "deployment_pattern": ["deploy_code", "deploy_models", "hybrid"],
    "cicd_platform": ["github_actions", "azure_devops", "gitlab", "none"],
    "cloud": ["azure", "aws", "gcp"],
    "compute": ["serverless", "classic"],
    "include_monitoring": [True, False],
    "include_serving_endpoint": [False, True],
    "include_feature_store": [False, True],
}


def pairwise(options: dict[str, list] = OPTIONS) -> list[dict]:
    """A small set of combinations covering every pair of values of two options.

    Greedy: repeatedly take the full combination that covers the most uncovered pairs
    (ties broken by enumeration order, so the result is deterministic).
    """
    keys = list(options)
    uncovered = {
        ((a, va), (b, vb)) for a, b in itertools.combinations(keys, 2) for va in options[a] for vb in options[b]
    }
    candidates = [dict(zip(keys, values, strict=True)) for values in itertools.product(*options.values())]
    chosen = []

    def pairs(combo: dict) -> set:
        return {((a, combo[a]), (b, combo[b])) for a, b in itertools.combinations(keys, 2)}

    while uncovered:
        best = max(candidates, key=lambda combo: len(pairs(combo) & uncovered))
        chosen.append(best)
        uncovered -= pairs(best)
    return chosen


def combinations() -> list[dict]:
    """The defaults, each pattern on its own, and a pairwise cover of all options."""
    combos = [{}] + [{"deployment_pattern": p} for p in OPTIONS["deployment_pattern"][1:]] + pairwise()
    return [{**combo, "project_slug": f"proj_{i}"} for i, combo in enumerate(combos)]
