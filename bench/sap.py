"""Time the complete analysis plan of the example protocol, analysis by analysis.

Run: .venv/bin/python bench/sap.py [participants] [participants for the MMRM alone]
     (default 10000 and 100000)

1. A trial of the example protocol (three arms, baseline and five post-baseline visits) is
   simulated in memory with `trials.simulate.plan` and derived into ADSL, ADQS and ADTTE by
   `analysis.datasets`, then `analysis.sap.run_sap` runs the whole plan (50 imputations, six
   tipping-point shifts, subgroups, every estimand). Each analysis's time inside the run is
   printed beside the time of the bare library call it wraps, on the same data.
2. The primary MMRM is timed against R's nlme::gls (corSymm + varIdent, REML) on the first
   1,000 participants, when Rscript with nlme and emmeans is installed.
3. The MMRM alone is timed on a larger simulated data set of the same design.
"""

import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.analysis

VISITS = ["W02", "W04", "W06", "W08", "W12"]
STRATA = ["site", "severity_stratum"]

R_SCRIPT = r"""
suppressMessages({library(nlme); library(emmeans)})
d <- read.csv(commandArgs(TRUE)[1], stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("ATTN", "CBT", "WAIT")); d$visit <- factor(d$avisit)
d$site <- factor(d$site); d$severity <- factor(d$severity_stratum)
d <- d[order(d$subject, d$visit), ]
t0 <- proc.time()[["elapsed"]]
fit <- gls(chg ~ arm * visit + base * visit + site + severity, data = d,
           correlation = corSymm(form = ~ as.integer(visit) | subject),
           weights = varIdent(form = ~ 1 | visit), method = "REML",
           control = glsControl(natural = FALSE))
t1 <- proc.time()[["elapsed"]]
emm <- emmeans(fit, ~ arm | visit, mode = "satterthwaite", data = d)
s <- as.data.frame(summary(contrast(emm, "trt.vs.ctrl", adjust = "none")))
s <- s[s$contrast == "CBT - ATTN" & s$visit == "W08", ]
t2 <- proc.time()[["elapsed"]]
cat(sprintf("%.3f %.3f %.8f %.8f\n", t1 - t0, t2 - t1, s$estimate, s$SE))
"""


def timed(call: Callable[[], Any], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def mmrm_frame(adsl: pd.DataFrame, adqs: pd.DataFrame, paramcd: str = "PHQ9TOT") -> pd.DataFrame:
    rows = adqs[
        (adqs["paramcd"] == paramcd)
        & (adqs["anl01fl"] == "Y")
        & adqs["avisit"].isin(VISITS)
        & (adqs["ady"] > 0)
    ]
    rows = rows[rows["chg"].notna() & rows["base"].notna()]
    rows = rows.merge(adsl[["subject", *STRATA]], on="subject")
    return rows.assign(chg=rows["chg"].astype(float), base=rows["base"].astype(float))


def fit_primary(data: pd.DataFrame) -> Any:
    from analysis.mmrm import fit_mmrm

    return fit_mmrm(
        data,
        subject="subject",
        visit="avisit",
        arm="arm",
        response="chg",
        reference_arm="ATTN",
        covariates=STRATA,
        visit_covariates=["base"],
        visits=VISITS,
        primary_visit="W08",
        primary_arm="CBT",
    )


def bare_calls(t: Any) -> dict[str, tuple[str, float]]:
    """The library calls that the analyses wrap, alone, on the same data."""
    import statsmodels.api as sm
    from lifelines import KaplanMeierFitter
    from statsmodels.duration.hazard_regression import PHReg
    from statsmodels.duration.survfunc import survdiff
    from statsmodels.stats.multitest import multipletests

    out: dict[str, tuple[str, float]] = {}
    data = mmrm_frame(t.adsl, t.adqs)
    out["MMRM"] = ("analysis.mmrm.fit_mmrm alone", timed(lambda: fit_primary(data)))
    at = data[data["avisit"] == "W08"]
    x = pd.get_dummies(at[["arm", *STRATA]], drop_first=True, dtype=float).assign(base=at["base"])
    x = sm.add_constant(x)
    out["ANCOVA"] = ("statsmodels OLS fit alone", timed(lambda: sm.OLS(at["chg"].to_numpy(), x).fit(), 3))
    out["HEDGES_G"] = (
        "numpy means and SDs alone",
        timed(lambda: at.groupby("arm")["chg"].agg(["mean", "std", "count"]), 3),
    )
    resp = at.assign(y=(at["chg"] <= -0.5 * at["base"]).astype(float))
    out["BINARY"] = (
        "statsmodels GLM binomial fit alone",
        timed(lambda: sm.GLM(resp["y"].to_numpy(), x, family=sm.families.Binomial()).fit(), 3),
    )
    tte = t.adtte[t.adtte["paramcd"] == "TTRESP"].merge(t.adsl[["subject", *STRATA]], on="subject")
    tte = tte.assign(event=(tte["cnsr"] == 0).astype(float), time=tte["aval"].astype(float))
    two = tte[tte["arm"].isin(["CBT", "ATTN"])]

    def km() -> None:
        for _arm, part in tte.groupby("arm"):
            KaplanMeierFitter().fit(part["time"], part["event"])

    out["KM"] = ("lifelines KaplanMeierFitter alone", timed(km, 3))
    strata = pd.factorize(two["site"] + "/" + two["severity_stratum"])[0]
    out["LOGRANK"] = (
        "statsmodels survdiff (stratified) alone",
        timed(
            lambda: survdiff(
                two["time"].to_numpy(), two["event"].to_numpy(), two["arm"].to_numpy(), strata=strata
            ),
            3,
        ),
    )
    xarm = (two["arm"] == "CBT").to_numpy(dtype=float)[:, None]
    out["COX"] = (
        "statsmodels PHReg fit alone",
        timed(
            lambda: PHReg(
                two["time"].to_numpy(), xarm, status=two["event"].to_numpy(), strata=strata, ties="efron"
            ).fit(),
            3,
        ),
    )
    out["descriptive"] = (
        "pandas groupby describe alone",
        timed(
            lambda: t.adqs[t.adqs["anl01fl"] == "Y"].groupby(["paramcd", "arm", "avisit"])["aval"].describe(),
            3,
        ),
    )
    p = np.array([0.001, 0.01, 0.02, 0.03, 0.2, 0.5])
    out["hierarchy"] = (
        "statsmodels multipletests (Holm) alone",
        timed(lambda: multipletests(p, method="holm"), 3),
    )
    return out


def category(label: str) -> str:
    if label.endswith((".MMRM", ".MMRM_UNPRORATED")):
        return "MMRM"
    for key in (
        "ANCOVA",
        "HEDGES_G",
        "ADJUSTED_D",
        "TIPPING",
        "SUBGROUP",
        "BINARY",
        "KM",
        "LOGRANK",
        "COX",
        "MI",
    ):
        if f".{key}" in label:
            return key
    return label.split(" ")[0]


def r_gls(data: pd.DataFrame) -> str:
    if shutil.which("Rscript") is None:
        return "R not installed"
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        script = Path(tmp) / "fit.R"
        data[["subject", "arm", "avisit", "chg", "base", *STRATA]].to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        run = subprocess.run(["Rscript", str(script), str(csv)], capture_output=True, text=True)
    if run.returncode != 0:
        return "R failed: " + run.stderr.strip().splitlines()[-1]
    fit_s, emm_s, est, se = run.stdout.split()
    return f"gls {float(fit_s):.2f} s + emmeans {float(emm_s):.2f} s (W08 CBT - ATTN {est}, SE {se})"


def synthetic(n: int, seed: int = 3) -> pd.DataFrame:
    """The primary MMRM's data for `n` participants, vectorised: three arms, three sites, two
    severity strata, five post-baseline visits, dropout depending on the last value (MAR) and
    intermittent missed visits."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, len(VISITS) + 1)
    sd = np.linspace(3.0, 4.4, len(VISITS))
    corr = 0.35 + 0.45 * 0.7 ** np.abs(t[:, None] - t[None, :])
    np.fill_diagonal(corr, 1.0)
    arm = rng.choice(np.array(["CBT", "ATTN", "WAIT"]), n)
    effect = np.select([arm == "CBT", arm == "ATTN"], [-6.5, -3.5], -2.0)
    site = rng.choice(np.array(["LDS", "MAN", "BRS"]), n, p=[0.45, 0.35, 0.2])
    base = np.clip(np.round(rng.normal(14.5, 2.6, n)), 10, 19)
    severity = np.where(base >= 15, "PHQ-9 15-27", "PHQ-9 0-14")
    progress = np.minimum(1.0, (1 - np.exp(-np.array([14, 28, 42, 56, 84]) / 21)) / (1 - np.exp(-56 / 21)))
    y = effect[:, None] * progress[None, :] - 0.2 * (base[:, None] - 14.5)
    y = y + rng.multivariate_normal(np.zeros(len(VISITS)), corr * np.outer(sd, sd), n)
    leave = rng.random((n, len(VISITS))) < 1 / (1 + np.exp(-(-3.4 + 0.12 * (base[:, None] + y - 12))))
    gone = np.cumsum(leave, axis=1) > 0
    observed = ~gone & (rng.random((n, len(VISITS))) > 0.07)
    frame = pd.DataFrame(
        {
            "subject": np.repeat(np.arange(n), len(VISITS)),
            "arm": np.repeat(arm, len(VISITS)),
            "site": np.repeat(site, len(VISITS)),
            "severity_stratum": np.repeat(severity, len(VISITS)),
            "avisit": np.tile(VISITS, n),
            "base": np.repeat(base, len(VISITS)),
            "chg": np.where(observed, np.round(y), np.nan).ravel(),
        }
    )
    return frame[frame["chg"].notna()].reset_index(drop=True)


def main(n: int, n_large: int) -> None:
    from analysis.sap import frames_sha256, run_sap
    from protocols.sap_spec import sap_spec_of
    from tests.analysis.sap_trial import example_document, simulate

    warnings.simplefilter("error")  # a warning escaping an analysis is a defect
    spec = sap_spec_of(example_document())
    small = simulate(300, 5)  # warm-up: imports and first calls are not timed
    run_sap(
        small.adsl, small.adqs, small.adtte, spec, blinded=False, input_sha256="", screening=small.screening
    )

    start = time.perf_counter()
    t = simulate(n, 20250114)
    made = time.perf_counter() - start
    visits_per = (
        t.adqs[(t.adqs["paramcd"] == "PHQ9TOT") & (t.adqs["anl01fl"] == "Y")].groupby("subject").size()
    )
    print(
        f"{n} participants x {1 + len(VISITS)} visits ({len(t.screening)} screened, {len(t.adqs)} ADQS rows, "
        f"{visits_per.mean():.2f} analysed PHQ-9 visits each): simulated and derived in {made:.1f} s"
    )
    start = time.perf_counter()
    sha = frames_sha256({"adsl": t.adsl, "adqs": t.adqs, "adtte": t.adtte})
    print(f"input sha256 in {time.perf_counter() - start:.2f} s")

    timings: list[tuple[str, float]] = []
    start = time.perf_counter()
    doc = run_sap(
        t.adsl,
        t.adqs,
        t.adtte,
        spec,
        blinded=False,
        input_sha256=sha,
        screening=t.screening,
        adqs_unprorated=t.adqs_unprorated,
        timings=timings,
    )
    total = time.perf_counter() - start
    start = time.perf_counter()
    text = doc.to_json()
    to_json = time.perf_counter() - start
    blinded_timings: list[tuple[str, float]] = []
    start = time.perf_counter()
    run_sap(
        t.adsl,
        t.adqs,
        t.adtte,
        spec,
        blinded=True,
        input_sha256=sha,
        screening=t.screening,
        timings=blinded_timings,
    )
    blinded_total = time.perf_counter() - start

    bare = bare_calls(t)
    print(
        f"\ncomplete plan, unblinded: {total:.2f} s, {len(doc.results)} results, "
        f"JSON {len(text) / 1e6:.1f} MB in {to_json:.2f} s"
    )
    print(f"complete plan, blinded:   {blinded_total:.2f} s\n")
    print(f"{'analysis (inside run_sap)':<52} {'s':>7}   {'bare library call':<42} {'s':>7}")
    for label, seconds in timings:
        name, bare_s = bare.get(category(label), ("", float("nan")))
        shown = f"{bare_s:7.3f}" if name else ""
        print(f"{label:<52} {seconds:7.3f}   {name:<42} {shown}")
    primary = doc.primary
    assert primary is not None
    print(
        f"\nprimary: {primary.analysis_id} {primary.estimate:.4f} "
        f"(SE {primary.se:.4f}, df {primary.df:.1f}), p = {primary.p_value:.2e}"
    )

    first = t.adsl["subject"].iloc[:1000]
    data = mmrm_frame(t.adsl[t.adsl["subject"].isin(first)], t.adqs[t.adqs["subject"].isin(first)])
    seconds = timed(lambda: fit_primary(data))
    fit = fit_primary(data)
    print(
        f"\nMMRM on the first 1,000 participants: ours {seconds:.3f} s "
        f"(W08 CBT - ATTN {fit.primary.estimate:.8f}, SE {fit.primary.se:.8f}); R: {r_gls(data)}"
    )
    for size in (n, n_large):
        data = synthetic(size)
        seconds = timed(lambda data=data: fit_primary(data))
        fit = fit_primary(data)
        print(
            f"MMRM alone, {size} participants x {len(VISITS)} post-baseline visits, three arms "
            f"({len(data)} observations): {seconds:.2f} s, {fit.iterations} iterations, "
            f"converged {fit.converged}"
        )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(args[0] if args else 10_000, args[1] if len(args) > 1 else 100_000)
