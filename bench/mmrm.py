"""Time the MMRM fit (unstructured covariance, REML, Satterthwaite df) against R's nlme::gls.

Run: .venv/bin/python bench/mmrm.py [participants ...]   (default 1000 10000 100000)

Data: 6 post-baseline visits, two arms, 4 sites, baseline score, MAR monotone dropout plus
intermittent missed visits (about a fifth of visits missing). R's gls (corSymm + varIdent,
REML) and emmeans with Satterthwaite df is timed on the 1,000-participant data set when
Rscript with nlme and emmeans is installed.
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

VISITS = 6

R_SCRIPT = r"""
suppressMessages({library(nlme); library(emmeans)})
d <- read.csv(commandArgs(TRUE)[1], stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("control", "app")); d$visit <- factor(d$visit); d$site <- factor(d$site)
d <- d[order(d$subject, d$visit), ]; d <- d[!is.na(d$chg), ]
t0 <- proc.time()[["elapsed"]]
fit <- gls(chg ~ arm * visit + base * visit + site, data = d,
           correlation = corSymm(form = ~ as.integer(visit) | subject),
           weights = varIdent(form = ~ 1 | visit), method = "REML",
           control = glsControl(natural = FALSE))
t1 <- proc.time()[["elapsed"]]
emm <- emmeans(fit, ~ arm | visit, mode = "satterthwaite", data = d)
s <- summary(contrast(emm, "trt.vs.ctrl", adjust = "none"))
t2 <- proc.time()[["elapsed"]]
cat(sprintf("%.3f %.3f %.6f %.6f\n", t1 - t0, t2 - t1, s$estimate[nrow(s)], s$SE[nrow(s)]))
"""


def simulate(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(1, VISITS + 1)
    sd = np.linspace(3.0, 4.6, VISITS)
    corr = 0.35 + 0.45 * 0.7 ** np.abs(t[:, None] - t[None, :])
    np.fill_diagonal(corr, 1.0)
    cov = corr * np.outer(sd, sd)
    arm = rng.integers(0, 2, n)
    site = rng.integers(1, 5, n)
    base = np.clip(np.round(rng.normal(16, 3.5, n)), 10, 27)
    mean = -1.2 * t[None, :] * (1 + 0.3 * arm[:, None]) - 0.15 * (base[:, None] - 16)
    y = mean + rng.multivariate_normal(np.zeros(VISITS), cov, n)
    leave = rng.random((n, VISITS)) < 1 / (1 + np.exp(-(-3.2 + 0.15 * (y + 1.2 * t))))
    gone = np.cumsum(np.roll(leave, 1, axis=1) * (t > 1), axis=1) > 0
    observed = ~gone & (rng.random((n, VISITS)) > 0.08)
    return pd.DataFrame(
        {
            "subject": np.repeat(np.arange(n), VISITS),
            "arm": np.repeat(np.where(arm == 1, "app", "control"), VISITS),
            "site": np.repeat([f"S{s}" for s in site], VISITS),
            "visit": np.tile(t, n),
            "base": np.repeat(base, VISITS),
            "chg": np.where(observed, np.round(y, 2), np.nan).ravel(),
        }
    )


def ours(data: pd.DataFrame) -> tuple[float, object]:
    from analysis.mmrm import fit_mmrm

    start = time.perf_counter()
    result = fit_mmrm(
        data,
        subject="subject",
        visit="visit",
        arm="arm",
        response="chg",
        reference_arm="control",
        covariates=("site",),
        visit_covariates=("base",),
    )
    return time.perf_counter() - start, result


def r_gls(data: pd.DataFrame) -> str:
    if shutil.which("Rscript") is None:
        return "R not installed"
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        script = Path(tmp) / "fit.R"
        data.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        run = subprocess.run(["Rscript", str(script), str(csv)], capture_output=True, text=True)
    if run.returncode != 0:
        return "R failed: " + run.stderr.strip().splitlines()[-1]
    fit_s, emm_s, est, se = run.stdout.split()
    return f"gls {float(fit_s):.2f} s + emmeans {float(emm_s):.2f} s (primary difference {est}, SE {se})"


def main(sizes: list[int]) -> None:
    ours(simulate(200, seed=2))  # warm-up: imports and first calls are not timed
    for n in sizes:
        data = simulate(n)
        seconds, result = ours(data)
        missing = data["chg"].isna().mean()
        print(
            f"{n:>7} participants x {VISITS} visits ({missing:.0%} missing): ours {seconds:.2f} s, "
            f"{result.iterations} iterations, converged {result.converged}; primary difference "
            f"{result.primary.estimate:.6f}, SE {result.primary.se:.6f}, df {result.primary.df:.1f}"
        )
        if n == 1000:
            print(f"{'':>7} R on the same data: {r_gls(data)}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000, 100000])
