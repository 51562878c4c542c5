# Reference values for analysis.mmrm: nlme::gls with an unstructured covariance
# (corSymm + varIdent by visit), REML, and emmeans LS means and differences against the
# control arm at each visit, with Satterthwaite degrees of freedom.
#
# R from Debian's packages: apt-get install --no-install-recommends r-base-core r-cran-nlme r-cran-emmeans
# Run from this folder: Rscript mmrm.R   (writes mmrm_expected.json)
# Inputs: mmrm_<name>.csv written by mmrm_data.py.
#
# Generated with (sessionInfo()):
#   R version 4.2.2 Patched (2022-11-10 r83330), Debian GNU/Linux 12 (bookworm)
#   nlme_3.1-162  emmeans_1.8.4-1  estimability_1.4.1  numDeriv_2016.8-1.1
#
# Notes on the settings:
# * glsControl(natural = FALSE) makes gls keep the approximate covariance of the variance
#   parameters (apVar) in its own unconstrained parametrisation. Only then does emmeans use its
#   analytical "satterthwaite" mode for gls; with the default (natural = TRUE) it falls back to
#   "appx-satterthwaite", which perturbs the response with random noise and refits.
# * The tolerances are tightened so that the reference is the optimum, not a point near it.
# * Rows with a missing response are dropped before the fit (as na.omit would).
# * emmeans' Satterthwaite df for gls use gls's apVar, the inverse of a finite-difference
#   Hessian (nlme::fdHess) of the restricted log-likelihood, which is accurate to only about 1%
#   here. Beside emmeans' own df this script therefore writes "df_accurate": the same emmeans
#   formula (emmeans' own gradient, emmeans:::gls_grad) with the Hessian of nlme's own
#   restricted log-likelihood (nlme:::glsApVar.fullGlsLogLik) taken by Richardson
#   extrapolation (numDeriv::hessian) at the same parameters.
suppressMessages({
  library(nlme)
  library(emmeans)
})
source("json_writer.R")

fit_one <- function(name) {
  d <- read.csv(sprintf("mmrm_%s.csv", name), stringsAsFactors = FALSE)
  arms <- c("control", setdiff(sort(unique(d$arm)), "control"))
  d$arm <- factor(d$arm, levels = arms)
  d$visit <- factor(d$visit, levels = sort(unique(d$visit)))
  d$site <- factor(d$site)
  d <- d[order(d$subject, d$visit), ]
  dd <- d[!is.na(d$chg), ]
  ctrl <- glsControl(natural = FALSE, tolerance = 1e-10, maxIter = 500, msMaxIter = 1000)
  fit <- gls(chg ~ arm * visit + base * visit + site, data = dd,
             correlation = corSymm(form = ~ as.integer(visit) | subject),
             weights = varIdent(form = ~ 1 | visit),
             method = "REML", control = ctrl)
  # covariance of one participant observed at every visit
  full <- names(which(table(dd$subject) == nlevels(d$visit)))[1]
  sigma_hat <- unclass(getVarCov(fit, individual = full))
  # accurate Hessian of the restricted log-likelihood in gls's own parameters
  V <- vcov(fit)
  A <- fit$apVar
  pars <- attr(A, "Pars")
  X <- model.matrix(chg ~ arm * visit + base * visit + site, data = dd)
  conLin <- attr(fit$modelStruct, "conLin")
  conLin$Xy <- cbind(X, dd$chg)
  conLin$logLik <- 0
  dims <- list(N = nrow(X), p = ncol(X), REML = 1L)
  st <- fit$modelStruct
  attr(st, "fixedSigma") <- FALSE
  ll <- function(p) nlme:::glsApVar.fullGlsLogLik(p, st, conLin, dims, dims$N - dims$p)
  A_accurate <- solve(-numDeriv::hessian(ll, pars))
  G <- emmeans:::gls_grad(fit, fit$call, dd, V)
  df_accurate <- function(linfct) apply(linfct, 1, function(k) {
    est <- drop(t(k) %*% V %*% k)
    g <- sapply(G, function(M) drop(t(k) %*% M %*% k))
    2 * est^2 / drop(t(g) %*% A_accurate %*% g)
  })
  out <- list()
  for (mode in c("satterthwaite", "df.error")) {
    emm <- emmeans(fit, ~ arm | visit, mode = mode, data = dd)
    s <- as.data.frame(summary(emm, infer = c(TRUE, FALSE)))
    ctr <- contrast(emm, "trt.vs.ctrl", ref = 1, adjust = "none")
    cs <- as.data.frame(summary(ctr, infer = c(TRUE, TRUE), adjust = "none"))
    if (mode == "satterthwaite") {
      s$df_accurate <- df_accurate(emm@linfct)
      cs$df_accurate <- df_accurate(ctr@linfct)
    }
    out[[mode]] <- list(
      lsmeans = lapply(seq_len(nrow(s)), function(i) list(
        arm = as.character(s$arm[i]), visit = as.character(s$visit[i]),
        estimate = s$emmean[i], se = s$SE[i], df = s$df[i], df_accurate = s$df_accurate[i],
        ci_low = s$lower.CL[i], ci_high = s$upper.CL[i])),
      differences = lapply(seq_len(nrow(cs)), function(i) list(
        contrast = as.character(cs$contrast[i]), visit = as.character(cs$visit[i]),
        estimate = cs$estimate[i], se = cs$SE[i], df = cs$df[i], df_accurate = cs$df_accurate[i],
        ci_low = cs$lower.CL[i], ci_high = cs$upper.CL[i],
        t = cs$t.ratio[i], p_value = cs$p.value[i]))
    )
  }
  list(
    formula = "chg ~ arm * visit + base * visit + site",
    n_subjects = length(unique(dd$subject)),
    n_observations = nrow(dd),
    coefficients = as.list(coef(fit)),
    vcov = unname(vcov(fit)),
    covariance = unname(sigma_hat),
    log_likelihood = as.numeric(logLik(fit)),
    satterthwaite = out[["satterthwaite"]],
    df_error = out[["df.error"]]
  )
}

names <- c("balanced", "three_arms", "monotone", "intermittent")
result <- lapply(names, fit_one)
names(result) <- names
writeLines(to_json(result), "mmrm_expected.json")
print(sessionInfo())
