"""Write the synthetic longitudinal datasets that the MMRM, ANCOVA and imputation references use.

Run from the repository root: .venv/bin/python tests/analysis/reference/mmrm_data.py
The output is deterministic (fixed seeds); values are rounded to 2 decimals so that R and
Python read exactly the same numbers. Each CSV is long: one row per participant and visit, with
an empty ``chg`` where the visit is missing.

Columns: subject, arm, site, visit (1..T), base (baseline score), chg (change from baseline).
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def _simulate(
    seed: int,
    arms: dict[str, int],
    effects: dict[str, float],
    n_visits: int,
    sites: int,
    dropout: str,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = np.arange(1, n_visits + 1)
    # unstructured-looking covariance: rising SD, decaying correlation
    sd = np.linspace(3.0, 4.6, n_visits)
    lag = np.abs(visits[:, None] - visits[None, :])
    corr = 0.35 + 0.45 * 0.7**lag
    np.fill_diagonal(corr, 1.0)
    cov = corr * np.outer(sd, sd)
    rows = []
    subject = 0
    for arm, n in arms.items():
        for _ in range(n):
            subject += 1
            site = f"S{rng.integers(1, sites + 1)}"
            base = float(np.clip(np.round(rng.normal(16.0, 3.5)), 10, 27))
            site_effect = {"S1": 0.0, "S2": -0.6, "S3": 0.5, "S4": -0.2}[site]
            mean = (
                -1.2 * visits * (1 + effects[arm]) - 0.15 * (base - 16.0) * (1 + 0.1 * visits) + site_effect
            )
            y = mean + rng.multivariate_normal(np.zeros(n_visits), cov)
            observed = np.ones(n_visits, dtype=bool)
            if dropout in ("monotone", "both"):
                for j in range(n_visits - 1):
                    # MAR: worse (less negative) change at visit j makes leaving after it likelier
                    p = 1 / (1 + np.exp(-(-2.6 + 0.18 * (y[j] + 1.2 * (j + 1)))))
                    if rng.random() < p:
                        observed[j + 1 :] = False
                        break
            if dropout in ("intermittent", "both"):
                observed &= rng.random(n_visits) > 0.12
            for j, v in enumerate(visits):
                rows.append(
                    {
                        "subject": f"P{subject:04d}",
                        "arm": arm,
                        "site": site,
                        "visit": int(v),
                        "base": base,
                        "chg": round(float(y[j]), 2) if observed[j] else np.nan,
                    }
                )
    return pd.DataFrame(rows)


DATASETS = {
    # two arms of equal size, complete data, 5 visits
    "balanced": {
        "seed": 20240601,
        "arms": {"control": 110, "app": 110},
        "effects": {"control": 0.0, "app": 0.35},
        "n_visits": 5,
        "sites": 3,
        "dropout": "none",
    },
    # three arms of unequal size, 4 visits, intermittent missingness
    "three_arms": {
        "seed": 20240602,
        "arms": {"control": 70, "app": 110, "app_plus": 140},
        "effects": {"control": 0.0, "app": 0.25, "app_plus": 0.4},
        "n_visits": 4,
        "sites": 4,
        "dropout": "intermittent",
    },
    # two unequal arms, 6 visits, monotone MAR dropout
    "monotone": {
        "seed": 20240603,
        "arms": {"control": 150, "app": 100},
        "effects": {"control": 0.0, "app": 0.3},
        "n_visits": 6,
        "sites": 3,
        "dropout": "monotone",
    },
    # two arms, 5 visits, intermittent and monotone missingness together
    "intermittent": {
        "seed": 20240604,
        "arms": {"control": 130, "app": 120},
        "effects": {"control": 0.0, "app": 0.3},
        "n_visits": 5,
        "sites": 4,
        "dropout": "both",
    },
}


def main() -> None:
    for name, spec in DATASETS.items():
        frame = _simulate(**spec)  # type: ignore[arg-type]
        frame.to_csv(HERE / f"mmrm_{name}.csv", index=False, float_format="%.2f")
        missing = frame["chg"].isna().mean()
        print(f"{name}: {frame['subject'].nunique()} participants, {missing:.1%} visits missing")


if __name__ == "__main__":
    main()
