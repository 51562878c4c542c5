r"""Mixed model for repeated measures (MMRM) with an unstructured covariance, fitted by REML.

The model for participant :math:`i` observed at the visits :math:`O_i` is

.. math:: y_i = X_i \beta + \varepsilon_i, \qquad \varepsilon_i \sim N(0, \Sigma_{O_i})

where :math:`\Sigma` is an unrestricted (unstructured) :math:`T \times T` covariance matrix
over the visits and :math:`\Sigma_{O_i}` its rows and columns of the observed visits. There are
no random effects: this is the model that R fits with ``nlme::gls(...,
correlation = corSymm(), weights = varIdent(~ 1 | visit), method = "REML")``.

Participants are grouped by their pattern of observed visits. For each pattern the sums
:math:`\sum_i x_{ia} x_{ib}^\top`, :math:`\sum_i x_{ia} y_{ib}` and :math:`\sum_i y_{ia}
y_{ib}` over pairs of observed visits :math:`(a, b)` are formed once; every later evaluation of
the restricted likelihood, its gradient and the contrast variances then costs a fixed amount per
pattern, whatever the number of participants. The fixed effects are profiled out by generalised
least squares; :math:`\Sigma = L L^\top` is parametrised by its Cholesky factor with the
logarithm of the diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analysis.results import Result, as_parameters, captured_warnings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]

__all__ = ["DF_METHODS", "MmrmResult", "fit_mmrm"]

#: Degrees-of-freedom methods offered by :func:`fit_mmrm`.
DF_METHODS: tuple[str, ...] = ("satterthwaite", "residual")


# --------------------------------------------------------------------------------------------
# Design matrices (shared with the ANCOVA and imputation modules)
# --------------------------------------------------------------------------------------------


def _is_categorical(series: pd.Series) -> bool:
    import pandas as pd

    return bool(
        isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(series.dtype)
        or pd.api.types.is_string_dtype(series.dtype)
        or pd.api.types.is_bool_dtype(series.dtype)
    )


def _levels(series: pd.Series) -> list[Any]:
    """Factor levels as R would make them: declared categories, else sorted unique values."""
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        present = set(series.dropna().unique())
        return [c for c in series.cat.categories if c in present]
    return sorted(series.dropna().unique().tolist())


@dataclass(frozen=True)
class _Factor:
    """A column coded by treatment contrasts: one indicator per level except the first."""

    column: str
    levels: tuple[Any, ...]

    def names(self) -> list[str]:
        return [f"{self.column}[{level}]" for level in self.levels[1:]]

    def columns(self, values: pd.Series) -> FloatArray:
        import numpy as np

        out = np.zeros((len(values), len(self.levels) - 1))
        for j, level in enumerate(self.levels[1:]):
            out[:, j] = (values.to_numpy() == level).astype(float)
        return out


@dataclass(frozen=True)
class _Design:
    """How a frame becomes a design matrix: main effects, then interactions with the visit.

    The columns are, in order: intercept; arm; visit (if any); each visit covariate and each
    covariate (a number, or a factor coded by treatment contrasts); arm by visit; each visit
    covariate by visit.
    """

    arm: _Factor
    visit: _Factor | None
    covariates: tuple[_Factor | str, ...]
    visit_covariates: tuple[_Factor | str, ...]

    def names(self) -> list[str]:
        names = ["(Intercept)", *self.arm.names()]
        visit_names = self.visit.names() if self.visit else []
        names += visit_names
        for cov in (*self.visit_covariates, *self.covariates):
            names += cov.names() if isinstance(cov, _Factor) else [cov]
        for a in self.arm.names():
            names += [f"{a}:{v}" for v in visit_names]
        for cov in self.visit_covariates:
            cov_names = cov.names() if isinstance(cov, _Factor) else [cov]
            names += [f"{c}:{v}" for c in cov_names for v in visit_names]
        return names

    def matrix(self, frame: pd.DataFrame) -> FloatArray:
        import numpy as np

        blocks = [np.ones((len(frame), 1)), self.arm.columns(frame[self.arm.column])]
        visit_block = self.visit.columns(frame[self.visit.column]) if self.visit else None
        if visit_block is not None:
            blocks.append(visit_block)
        for cov in (*self.visit_covariates, *self.covariates):
            blocks.append(self._block(cov, frame))
        if visit_block is not None:
            arm_block = blocks[1]
            blocks.append(_row_kron(arm_block, visit_block))
            for cov in self.visit_covariates:
                blocks.append(_row_kron(self._block(cov, frame), visit_block))
        return np.hstack(blocks)

    @staticmethod
    def _block(cov: _Factor | str, frame: pd.DataFrame) -> FloatArray:
        import numpy as np

        if isinstance(cov, _Factor):
            return cov.columns(frame[cov.column])
        return np.asarray(frame[cov].to_numpy(dtype=float)).reshape(-1, 1)

    def grid_rows(
        self,
        data: pd.DataFrame,
        arm_level: Any,
        visit_level: Any | None,
    ) -> FloatArray:
        """Return the emmeans reference-grid row for one arm (and visit).

        Numeric covariates are held at their mean over the analysed rows; factor covariates
        are averaged over their levels with equal weights (the defaults of ``emmeans``).
        """
        import itertools

        import numpy as np
        import pandas as pd

        factors = [c for c in (*self.covariates, *self.visit_covariates) if isinstance(c, _Factor)]
        numbers = [c for c in (*self.covariates, *self.visit_covariates) if isinstance(c, str)]
        combos = list(itertools.product(*(f.levels for f in factors))) or [()]
        grid: dict[str, Any] = {self.arm.column: [arm_level] * len(combos)}
        if self.visit is not None:
            grid[self.visit.column] = [visit_level] * len(combos)
        for k, f in enumerate(factors):
            grid[f.column] = [combo[k] for combo in combos]
        for name in numbers:
            grid[name] = [float(data[name].mean())] * len(combos)
        rows = self.matrix(pd.DataFrame(grid))
        return np.asarray(rows.mean(axis=0))


def _row_kron(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise products of every column of ``a`` with every column of ``b`` (a-major)."""
    import numpy as np

    return np.asarray((a[:, :, None] * b[:, None, :]).reshape(len(a), -1))


def _full_rank(x: FloatArray) -> bool:
    """Whether the columns of x are linearly independent (from the scaled cross-product)."""
    import numpy as np

    xtx = x.T @ x
    d = np.sqrt(np.diag(xtx))
    if np.any(d == 0):
        return False
    eig = np.linalg.eigvalsh(xtx / np.outer(d, d))
    return bool(eig[0] > 1e-10 * eig[-1])


def _term(frame: pd.DataFrame, column: str) -> _Factor | str:
    if _is_categorical(frame[column]):
        return _Factor(column, tuple(_levels(frame[column])))
    return column


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MmrmResult:
    r"""A fitted MMRM: LS means, differences against the reference arm, and the fit itself.

    Attributes
    ----------
    primary : Result
        The LS-mean difference of the primary arm against the reference arm at the primary
        visit, with SE, df, confidence limits and p-value.
    differences : tuple of Result
        The LS-mean difference of every other arm against the reference arm at every visit
        (``parameters`` name ``arm``, ``reference`` and ``visit``).
    lsmeans : tuple of Result
        The LS mean of every arm at every visit (``parameters`` name ``arm`` and ``visit``;
        ``p_value`` is None).
    coefficient_names : tuple of str
        Names of the fixed effects, e.g. ``arm[app]:visit[2]``.
    coefficients : numpy.ndarray
        Fixed-effect estimates (read-only).
    coefficient_covariance : numpy.ndarray
        Their model-based covariance :math:`(X^\top V^{-1} X)^{-1}` (read-only).
    visits : tuple
        The visits, in order; they index ``covariance``.
    covariance : numpy.ndarray
        The estimated unstructured covariance matrix :math:`\Sigma` (read-only).
    log_likelihood : float
        The maximised restricted log-likelihood (the value R's ``logLik`` reports for the
        equivalent ``gls`` fit).
    converged : bool
        Whether the optimiser met the convergence criterion.
    iterations : int
        Optimiser iterations (quasi-Newton and Newton steps together).
    gradient_norm : float
        Largest absolute gradient of :math:`-2 \log L_R` at the solution.
    n_subjects : int
        Participants with at least one analysed visit.
    n_observations : int
        Analysed participant-visits.
    df_method : str
        How degrees of freedom were computed.
    method : str
        Description of the model.
    notes : tuple of str
        Warnings and remarks.
    """

    primary: Result
    differences: tuple[Result, ...]
    lsmeans: tuple[Result, ...]
    coefficient_names: tuple[str, ...]
    coefficients: FloatArray
    coefficient_covariance: FloatArray
    visits: tuple[Any, ...]
    covariance: FloatArray
    log_likelihood: float
    converged: bool
    iterations: int
    gradient_norm: float
    n_subjects: int
    n_observations: int
    df_method: str
    method: str
    notes: tuple[str, ...] = field(default=())

    @property
    def standard_deviations(self) -> FloatArray:
        """Per-visit standard deviations, the square roots of the diagonal of ``covariance``.

        Returns
        -------
        numpy.ndarray
            One value per visit.
        """
        import numpy as np

        return np.asarray(np.sqrt(np.diag(self.covariance)))

    @property
    def correlation(self) -> FloatArray:
        r"""The correlation matrix of the visits implied by ``covariance``.

        Returns
        -------
        numpy.ndarray
            :math:`T \times T`, ones on the diagonal.
        """
        import numpy as np

        sd = self.standard_deviations
        return np.asarray(self.covariance / np.outer(sd, sd))

    def to_frame(self) -> pd.DataFrame:
        """Return the differences against the reference arm, one row per arm and visit.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm``, ``reference``, ``visit``, ``estimate``, ``se``, ``df``,
            ``ci_low``, ``ci_high``, ``p_value``.
        """
        return _results_frame(self.differences, ("arm", "reference", "visit"))

    def lsmeans_frame(self) -> pd.DataFrame:
        """Return the LS means, one row per arm and visit.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm``, ``visit``, ``estimate``, ``se``, ``df``, ``ci_low``,
            ``ci_high``.
        """
        frame = _results_frame(self.lsmeans, ("arm", "visit"))
        return frame.drop(columns=["p_value"])


def _results_frame(results: Sequence[Result], keys: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    rows = [
        {
            **{k: r.parameters[k] for k in keys},
            "estimate": r.estimate,
            "se": r.se,
            "df": r.df,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "p_value": r.p_value,
        }
        for r in results
    ]
    return pd.DataFrame(rows)


def _frozen(array: FloatArray) -> FloatArray:
    import numpy as np

    out = np.array(array, dtype=float)
    out.setflags(write=False)
    return out


# --------------------------------------------------------------------------------------------
# The restricted likelihood over missingness patterns
# --------------------------------------------------------------------------------------------


@dataclass
class _Group:
    """The missingness patterns with the same number of observed visits, stacked."""

    visits: npt.NDArray[np.intp]  # (K, m) indices of the observed visits of each pattern
    n: FloatArray  # (K,) participants per pattern
    gxx: FloatArray  # (K, m*m, p*p): sum_i x_ia x_ib' flattened over (a, b) and (p, q)
    gxy: FloatArray  # (K, m*m, p): sum_i x_ia y_ib
    gyy: FloatArray  # (K, m, m): sum_i y_ia y_ib


@dataclass
class _Evaluation:
    objective: float  # -2 log L_R without the constant
    beta: FloatArray
    m_inv: FloatArray  # (X' V^-1 X)^-1
    weights: list[FloatArray]  # (K, m, m) inverses of Sigma_O, per group
    chol: FloatArray  # L


class _Reml:
    """The REML criterion of an unstructured-covariance model, computed over patterns."""

    def __init__(self, groups: list[_Group], n_visits: int, p: int) -> None:
        import numpy as np

        self.groups = groups
        self.t = n_visits
        self.p = p
        self.tril = np.tril_indices(n_visits)

    # -- parametrisation ---------------------------------------------------------------------
    def n_theta(self) -> int:
        return self.t * (self.t + 1) // 2

    def chol(self, theta: FloatArray) -> FloatArray:
        import numpy as np

        lower = np.zeros((self.t, self.t))
        lower[self.tril] = theta
        d = np.arange(self.t)
        lower[d, d] = np.exp(lower[d, d])
        return lower

    def theta_of(self, sigma: FloatArray) -> FloatArray:
        import numpy as np

        lower = np.linalg.cholesky(sigma)
        d = np.arange(self.t)
        lower[d, d] = np.log(lower[d, d])
        return np.asarray(lower[self.tril])

    # -- criterion -----------------------------------------------------------------------------
    def evaluate(self, theta: FloatArray) -> _Evaluation:
        import numpy as np
        from scipy import linalg

        lower = self.chol(theta)
        sigma = lower @ lower.T
        pp = self.p * self.p
        m = np.zeros(pp)
        r = np.zeros(self.p)
        quad = 0.0
        logdet = 0.0
        weights = []
        for g in self.groups:
            sub = sigma[g.visits[:, :, None], g.visits[:, None, :]]
            c = np.linalg.cholesky(sub)
            c_inv = np.linalg.inv(c)
            w = np.swapaxes(c_inv, 1, 2) @ c_inv
            weights.append(w)
            wf = w.reshape(-1)
            m += wf @ g.gxx.reshape(-1, pp)
            r += wf @ g.gxy.reshape(-1, self.p)
            quad += float(wf @ g.gyy.reshape(-1))
            logdet += 2.0 * float(g.n @ np.log(np.diagonal(c, axis1=1, axis2=2)).sum(axis=1))
        mm = m.reshape(self.p, self.p)
        mm = (mm + mm.T) / 2
        cm = linalg.cho_factor(mm, lower=True, check_finite=False)
        beta = linalg.cho_solve(cm, r, check_finite=False)
        m_inv = linalg.cho_solve(cm, np.eye(self.p), check_finite=False)
        logdet_m = 2.0 * float(np.log(np.diag(cm[0])).sum())
        objective = logdet + (quad - float(beta @ r)) + logdet_m
        return _Evaluation(objective, beta, m_inv, weights, lower)

    def _scatter(self, pieces: list[FloatArray]) -> FloatArray:
        """Sum per-pattern m x m matrices into a T x T matrix at their visits."""
        import numpy as np

        out = np.zeros((self.t, self.t))
        for g, piece in zip(self.groups, pieces, strict=True):
            np.add.at(out, (g.visits[:, :, None], g.visits[:, None, :]), piece)
        return out

    def sigma_gradient(self, ev: _Evaluation) -> FloatArray:
        """d(-2 log L_R) / d Sigma as a symmetric T x T matrix (f = tr(D dSigma))."""
        import numpy as np

        beta = ev.beta
        bb = np.outer(beta, beta).reshape(-1)
        minv = ev.m_inv.reshape(-1)
        pieces = []
        for g, w in zip(self.groups, ev.weights, strict=True):
            k, m = g.visits.shape
            a = (g.gxy @ beta).reshape(k, m, m)  # sum_i x_ia' beta y_ib
            rss = g.gyy - a - np.swapaxes(a, 1, 2) + (g.gxx @ bb).reshape(k, m, m)
            c = (g.gxx @ minv).reshape(k, m, m)
            pieces.append(g.n[:, None, None] * w - w @ (rss + c) @ w)
        return self._scatter(pieces)

    def theta_gradient(self, lower: FloatArray, d_sigma: FloatArray) -> FloatArray:
        """Chain rule from a symmetric d/dSigma to the Cholesky parameters."""
        import numpy as np

        g = 2.0 * d_sigma @ lower
        d = np.arange(self.t)
        g[d, d] *= lower[d, d]
        return np.asarray(g[self.tril])

    def value_and_gradient(self, theta: FloatArray) -> tuple[float, FloatArray]:
        import numpy as np

        try:
            ev = self.evaluate(theta)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            return math.inf, np.full_like(theta, np.nan)
        return ev.objective, self.theta_gradient(ev.chol, self.sigma_gradient(ev))

    def hessian(self, theta: FloatArray) -> FloatArray:
        """Hessian of -2 log L_R by central differences of the analytic gradient."""
        import numpy as np

        k = len(theta)
        h = np.zeros((k, k))
        for j in range(k):
            step = 1e-5 * max(1.0, abs(theta[j]))
            up = theta.copy()
            down = theta.copy()
            up[j] += step
            down[j] -= step
            h[:, j] = (self.value_and_gradient(up)[1] - self.value_and_gradient(down)[1]) / (2 * step)
        return np.asarray((h + h.T) / 2)

    def contrast_gradient(self, ev: _Evaluation, contrasts: FloatArray) -> FloatArray:
        """d(l' (X'V^-1X)^-1 l) / d theta for each row l of ``contrasts`` (one row each)."""
        import numpy as np

        u = contrasts @ ev.m_inv  # (C, p)
        uu = (u[:, :, None] * u[:, None, :]).reshape(len(u), -1).T  # (p*p, C)
        out = np.zeros((len(u), self.n_theta()))
        per_group = []
        for g, w in zip(self.groups, ev.weights, strict=True):
            k, m = g.visits.shape
            q = np.moveaxis((g.gxx @ uu).reshape(k, m, m, len(u)), 3, 0)  # (C, K, m, m)
            per_group.append(w[None] @ q @ w[None])
        for j in range(len(u)):
            out[j] = self.theta_gradient(ev.chol, self._scatter([piece[j] for piece in per_group]))
        return out


def _groups(
    x: FloatArray, y: FloatArray, subject_codes: npt.NDArray[np.intp], visit_codes: npt.NDArray[np.intp]
) -> list[_Group]:
    """Group participants by observed-visit pattern and form the sums of products."""
    import numpy as np

    order = np.lexsort((visit_codes, subject_codes))
    x = x[order]
    y = y[order]
    subj = subject_codes[order]
    vis = visit_codes[order]
    n_sub = int(subj.max()) + 1
    counts = np.bincount(subj, minlength=n_sub)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # one row per participant and visit, sorted: the pattern code is a sum of distinct bits
    mask = np.add.reduceat(np.left_shift(1, vis.astype(np.int64)), starts)
    p = x.shape[1]
    by_size: dict[int, list[tuple[Any, ...]]] = {}
    for code in np.unique(mask):
        members = np.flatnonzero(mask == code)
        visits = np.array([v for v in range(64) if code >> v & 1], dtype=np.intp)
        m = len(visits)
        rows = (starts[members][:, None] + np.arange(m)[None, :]).reshape(-1)
        xk = x[rows].reshape(len(members), m * p)
        yk = y[rows].reshape(len(members), m)
        gxx = (xk.T @ xk).reshape(m, p, m, p).transpose(0, 2, 1, 3).reshape(m * m, p * p)
        gxy = (xk.T @ yk).reshape(m, p, m).transpose(0, 2, 1).reshape(m * m, p)
        by_size.setdefault(m, []).append((visits, len(members), gxx, gxy, yk.T @ yk))
    return [
        _Group(
            visits=np.stack([e[0] for e in entries]),
            n=np.array([e[1] for e in entries], dtype=float),
            gxx=np.stack([e[2] for e in entries]),
            gxy=np.stack([e[3] for e in entries]),
            gyy=np.stack([e[4] for e in entries]),
        )
        for _, entries in sorted(by_size.items())
    ]


def _start(
    x: FloatArray,
    y: FloatArray,
    subject_codes: npt.NDArray[np.intp],
    visit_codes: npt.NDArray[np.intp],
    n_visits: int,
) -> FloatArray:
    """Start from the pairwise covariances of ordinary least-squares residuals."""
    import numpy as np
    import pandas as pd

    beta = np.linalg.solve(x.T @ x, x.T @ y)
    resid = y - x @ beta
    wide = pd.DataFrame({"s": subject_codes, "v": visit_codes, "r": resid}).pivot(
        index="s", columns="v", values="r"
    )
    cov = wide.reindex(columns=range(n_visits)).cov(min_periods=3).to_numpy()
    var = np.nan_to_num(np.diag(cov), nan=float(np.var(resid)))
    var = np.where(var > 0, var, float(np.var(resid)) or 1.0)
    cov = np.nan_to_num(cov, nan=0.0)
    np.fill_diagonal(cov, var)
    if np.min(np.linalg.eigvalsh(cov)) <= 1e-8 * var.max():
        cov = np.diag(var)
    return np.asarray(cov)


def _optimise(reml: _Reml, theta0: FloatArray) -> tuple[FloatArray, bool, int, float, FloatArray]:
    """Minimise -2 log L_R by Newton steps (damped where the Hessian is not positive definite).

    The Hessian is differenced from the analytic gradient; each step is shortened until the
    criterion decreases enough (Armijo). Converged: the largest gradient entry is below 1e-9
    and the Newton decrement below 1e-14, both relative to the criterion (at least 1).
    """
    import numpy as np

    theta = np.asarray(theta0, dtype=float)
    f, g = reml.value_and_gradient(theta)
    if not math.isfinite(f):
        raise ValueError("the starting covariance is not positive definite")
    hess = reml.hessian(theta)
    converged = False
    iterations = 0
    scale = max(1.0, abs(f))
    for iterations in range(1, 201):  # noqa: B007 - the count is reported
        step = _descent_step(hess, g)
        longest = float(np.max(np.abs(step)))
        if longest > 2.0:  # at most a factor e^2 on a standard deviation per step
            step *= 2.0 / longest
        slope = float(g @ step)
        t = 1.0
        while t > 1e-10:
            f_new, g_new = reml.value_and_gradient(theta + t * step)
            if math.isfinite(f_new) and f_new <= f + 1e-4 * t * slope:
                break
            t /= 2
        else:
            break
        theta = theta + t * step
        f, g = f_new, g_new
        hess = reml.hessian(theta)
        decrement = -slope * t
        if np.max(np.abs(g)) < 1e-9 * scale and decrement < 1e-14 * scale:
            converged = True
            break
    grad_norm = float(np.max(np.abs(g)))
    if not converged and grad_norm < 1e-6 * scale:
        converged = True
    return theta, converged, iterations, grad_norm, hess


def _descent_step(hess: FloatArray, grad: FloatArray) -> FloatArray:
    """Newton step, with the Hessian shifted towards positive definiteness where needed."""
    import numpy as np

    shift = 0.0
    size = float(np.max(np.abs(np.diag(hess)))) or 1.0
    for _ in range(60):
        try:
            c = np.linalg.cholesky(hess + shift * np.eye(len(grad)))
        except np.linalg.LinAlgError:
            shift = max(2 * shift, 1e-8 * size)
            continue
        return np.asarray(-np.linalg.solve(c.T, np.linalg.solve(c, grad)))
    return np.asarray(-grad)


# --------------------------------------------------------------------------------------------
# The public function
# --------------------------------------------------------------------------------------------


def fit_mmrm(
    frame: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    arm: str,
    response: str,
    reference_arm: Any,
    covariates: Sequence[str] = (),
    visit_covariates: Sequence[str] = (),
    visits: Sequence[Any] | None = None,
    primary_visit: Any | None = None,
    primary_arm: Any | None = None,
    df_method: str = "satterthwaite",
    alpha: float = 0.05,
) -> MmrmResult:
    r"""Fit an MMRM with an unstructured covariance by REML and compare arms at each visit.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data, one row per participant and visit. Rows with a missing response are left
        out (the likelihood uses every observed visit: missing at random); rows with a missing
        arm, visit or covariate are left out and counted in ``notes``.
    subject, visit, arm, response : str
        Columns: participant identifier, visit, randomised arm, response (e.g. change from
        baseline).
    reference_arm : object
        The arm every other arm is compared with (the control).
    covariates : sequence of str
        Columns entering as main effects (e.g. stratification factors). Text, boolean and
        categorical columns are factors (treatment contrasts, first level as reference;
        declared category order is kept, other values are sorted); numeric columns enter
        linearly.
    visit_covariates : sequence of str
        Columns entering as a main effect and by visit (e.g. the baseline score).
    visits : sequence, optional
        The visits in order. Default: the sorted distinct visits in ``frame``. A row at any
        other visit is an error.
    primary_visit : object, optional
        The visit of the primary comparison. Default: the last visit.
    primary_arm : object, optional
        The arm of the primary comparison. Default: the only arm besides the reference
        (required with three or more arms).
    df_method : {"satterthwaite", "residual"}
        Degrees of freedom for every test and interval. ``"satterthwaite"``: the
        Satterthwaite approximation from the REML information of the covariance parameters;
        ``"residual"``: observations minus fixed effects minus covariance parameters (what
        ``emmeans`` uses for ``gls`` with ``mode = "df.error"``). Kenward-Roger is not
        offered (see Notes).
    alpha : float
        Two-sided level; intervals are at ``1 - alpha``.

    Returns
    -------
    MmrmResult
        With fields ``primary`` (a :class:`~analysis.results.Result`: estimate, se, df,
        ci_low, ci_high, p_value, n, method, parameters, notes), ``differences`` and
        ``lsmeans`` (tuples of Result), ``coefficient_names``, ``coefficients``,
        ``coefficient_covariance``, ``visits``, ``covariance``, ``log_likelihood``,
        ``converged``, ``iterations``, ``gradient_norm``, ``n_subjects``,
        ``n_observations``, ``df_method``, ``method`` and ``notes``.

    Raises
    ------
    ValueError
        On a missing column, a duplicated participant-visit, a visit not in ``visits``, an
        unknown reference or primary arm, fewer than two arms, or a model that cannot be
        estimated.

    Notes
    -----
    Fixed effects: arm, visit, arm by visit, each covariate, each visit covariate and its
    interaction with visit. With :math:`V_i = \Sigma_{O_i}` the restricted log-likelihood is

    .. math::

        -2 \log L_R(\Sigma) = \sum_i \left[\log |V_i| + r_i^\top V_i^{-1} r_i\right]
        + \log \left|\sum_i X_i^\top V_i^{-1} X_i\right| + (N - p) \log 2\pi,

    :math:`r_i = y_i - X_i \hat\beta(\Sigma)`, :math:`\hat\beta` the generalised
    least-squares estimate. It is minimised over the Cholesky factor of :math:`\Sigma` with
    an analytic gradient by Newton steps on a Hessian differenced from that gradient, to a
    largest gradient entry below 1e-9 relative to the criterion.

    LS means follow the defaults of R's ``emmeans``: for each arm and visit, numeric
    covariates are set to their mean over the analysed participant-visits (not over
    participants), factor covariates are averaged over their levels with equal weights. A
    difference is :math:`l^\top \hat\beta` with variance :math:`v = l^\top
    (X^\top V^{-1} X)^{-1} l`.

    Satterthwaite degrees of freedom are :math:`\nu = 2 v^2 / (g^\top A g)`, where
    :math:`g = \partial v / \partial \theta` (analytic) and :math:`A` is the inverse of
    the observed information of the covariance parameters, the Hessian of :math:`-\log L_R`
    (the quantity that ``gls`` stores as ``apVar``), here differenced from the analytic
    gradient. :math:`\nu` does not depend on how the covariance is parametrised. This is the
    formula of ``emmeans(..., mode = "satterthwaite")`` for ``gls``; ``gls`` however takes
    ``apVar`` from a coarse finite-difference Hessian (``nlme::fdHess``), so that emmeans'
    printed df differ from these by up to a few percent; with an accurate Hessian of the same
    likelihood R gives these df to 1e-4 (see ``tests/analysis/reference/mmrm.R``).

    Kenward-Roger degrees of freedom (and its bias-corrected covariance) are not offered:
    R's ``emmeans`` does not provide them for ``gls`` fits, so there is no reference to test
    them against.

    References
    ----------
    .. [1] Mallinckrodt CH, Lane PW, Schnell D, Peng Y, Mancuso JP. Recommendations for the
       primary analysis of continuous endpoints in longitudinal clinical trials. Drug Inf J.
       2008;42(4):303-319. doi:10.1177/009286150804200402
    .. [2] Pinheiro JC, Bates DM. Mixed-Effects Models in S and S-PLUS. Springer; 2000.
    .. [3] Satterthwaite FE. An approximate distribution of estimates of variance components.
       Biometrics Bulletin. 1946;2(6):110-114. doi:10.2307/3002019
    .. [4] Searle SR, Speed FM, Milliken GA. Population marginal means in the linear model: an
       alternative to least squares means. Am Stat. 1980;34(4):216-221.
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    if df_method not in DF_METHODS:
        raise ValueError(f"df_method must be one of {DF_METHODS}, not {df_method!r}")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie between 0 and 1")
    covariates = tuple(covariates)
    visit_covariates = tuple(visit_covariates)
    needed = [subject, visit, arm, response, *covariates, *visit_covariates]
    missing_cols = [c for c in needed if c not in frame.columns]
    if missing_cols:
        raise ValueError(f"columns not in the frame: {missing_cols}")

    notes: list[str] = []
    data = frame[list(dict.fromkeys(needed))]
    data = data[data[response].notna()]
    complete = data.notna().all(axis=1)
    if not complete.all():
        notes.append(
            f"{int((~complete).sum())} participant-visits with a missing arm, visit or covariate "
            "were left out."
        )
        data = data[complete]
    data = data.reset_index(drop=True)
    if data.empty:
        raise ValueError("no participant-visit has a response")
    if data.duplicated([subject, visit]).any():
        raise ValueError("a participant has more than one row at the same visit")

    visit_levels = list(visits) if visits is not None else sorted(frame[visit].dropna().unique().tolist())
    unknown = set(data[visit].unique()) - set(visit_levels)
    if unknown:
        raise ValueError(f"visits not in the visit list: {sorted(map(str, unknown))}")
    if len(visit_levels) > 30:
        raise ValueError("an unstructured covariance over more than 30 visits is not supported")
    arm_levels = _levels(data[arm])
    if reference_arm not in arm_levels:
        raise ValueError(f"reference arm {reference_arm!r} has no analysed data")
    arm_levels = [reference_arm, *[a for a in arm_levels if a != reference_arm]]
    if len(arm_levels) < 2:
        raise ValueError("at least two arms are needed")
    if primary_arm is None:
        if len(arm_levels) != 2:
            raise ValueError("primary_arm is required with three or more arms")
        primary_arm = arm_levels[1]
    if primary_arm not in arm_levels[1:]:
        raise ValueError(f"primary arm {primary_arm!r} is not a compared arm")
    primary_visit = visit_levels[-1] if primary_visit is None else primary_visit
    if primary_visit not in visit_levels:
        raise ValueError(f"primary visit {primary_visit!r} is not in the visit list")

    design = _Design(
        arm=_Factor(arm, tuple(arm_levels)),
        visit=_Factor(visit, tuple(visit_levels)),
        covariates=tuple(_term(data, c) for c in covariates),
        visit_covariates=tuple(_term(data, c) for c in visit_covariates),
    )
    names = design.names()
    x = design.matrix(data)
    y = data[response].to_numpy(dtype=float)
    p = x.shape[1]
    if not _full_rank(x):
        raise ValueError(
            "the fixed effects are not estimable (an arm without data at some visit, or a "
            "covariate that is constant or collinear)"
        )
    subject_codes = np.asarray(pd.factorize(data[subject])[0], dtype=np.intp)
    visit_index = {v: k for k, v in enumerate(visit_levels)}
    visit_codes = np.asarray(data[visit].map(visit_index).to_numpy(), dtype=np.intp)
    n_visits = len(visit_levels)
    n_obs = len(y)
    n_sub = int(subject_codes.max()) + 1
    present = np.bincount(visit_codes, minlength=n_visits)
    if (present == 0).any():
        raise ValueError("a visit has no analysed data")

    with captured_warnings() as caught:
        reml = _Reml(_groups(x, y, subject_codes, visit_codes), n_visits, p)
        theta0 = reml.theta_of(_start(x, y, subject_codes, visit_codes, n_visits))
        theta, converged, iterations, grad_norm, hess = _optimise(reml, theta0)
        ev = reml.evaluate(theta)
    notes.extend(caught)
    if not converged:
        notes.append(f"REML optimisation did not converge (largest gradient {grad_norm:.3g}).")
    log_lik = -0.5 * (ev.objective + (n_obs - p) * math.log(2 * math.pi))

    n_theta = reml.n_theta()
    if df_method == "satterthwaite":
        try:
            info_inv = np.linalg.inv(hess / 2.0)
        except np.linalg.LinAlgError:
            info_inv = np.full((n_theta, n_theta), np.nan)
            notes.append("The information matrix of the covariance parameters is singular.")
    residual_df = float(n_obs - p - (n_theta - 1))

    # every LS mean and difference at once: rows of L
    cells = [(a, v) for v in visit_levels for a in arm_levels]
    grid = {cell: design.grid_rows(data, *cell) for cell in cells}
    pairs = [(a, v) for v in visit_levels for a in arm_levels[1:]]
    contrasts = np.vstack(
        [grid[cell] for cell in cells] + [grid[(a, v)] - grid[(reference_arm, v)] for a, v in pairs]
    )
    estimates = contrasts @ ev.beta
    variances = np.einsum("ij,jk,ik->i", contrasts, ev.m_inv, contrasts)
    if df_method == "satterthwaite":
        grads = reml.contrast_gradient(ev, contrasts)
        dfs = 2.0 * variances**2 / np.einsum("ij,jk,ik->i", grads, info_inv, grads)
    else:
        dfs = np.full(len(contrasts), residual_df)
    ses = np.sqrt(variances)
    crits = stats.t.ppf(1 - alpha / 2, dfs)
    p_values = 2 * stats.t.sf(np.abs(estimates / ses), dfs)

    def result(k: int, **fields: Any) -> Result:
        return Result(
            estimate=float(estimates[k]),
            se=float(ses[k]),
            df=float(dfs[k]),
            ci_low=float(estimates[k] - crits[k] * ses[k]),
            ci_high=float(estimates[k] + crits[k] * ses[k]),
            **fields,
        )

    method = (
        "MMRM, unstructured covariance, REML; LS means at covariate means (factors averaged "
        f"with equal weights); {df_method} df"
    )
    counts = data.groupby([arm, visit]).size().to_dict()
    lsmeans = [
        result(
            k,
            n=int(counts.get((a, v), 0)),
            method=f"LS mean; {method}",
            parameters=as_parameters(arm=a, visit=v, alpha=alpha),
        )
        for k, (a, v) in enumerate(cells)
    ]
    arm_n = data.groupby(arm)[subject].nunique().to_dict()
    differences = [
        result(
            len(cells) + k,
            p_value=float(p_values[len(cells) + k]),
            n=int(arm_n.get(a, 0) + arm_n.get(reference_arm, 0)),
            method=f"LS-mean difference; {method}",
            parameters=as_parameters(arm=a, reference=reference_arm, visit=v, alpha=alpha),
            notes=tuple(notes),
        )
        for k, (a, v) in enumerate(pairs)
    ]
    primary = differences[pairs.index((primary_arm, primary_visit))]

    return MmrmResult(
        primary=primary,
        differences=tuple(differences),
        lsmeans=tuple(lsmeans),
        coefficient_names=tuple(names),
        coefficients=_frozen(ev.beta),
        coefficient_covariance=_frozen(ev.m_inv),
        visits=tuple(visit_levels),
        covariance=_frozen(ev.chol @ ev.chol.T),
        log_likelihood=log_lik,
        converged=converged,
        iterations=iterations,
        gradient_norm=grad_norm,
        n_subjects=n_sub,
        n_observations=n_obs,
        df_method=df_method,
        method=method,
        notes=tuple(notes),
    )
