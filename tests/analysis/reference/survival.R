# Expected values for tests/analysis/test_survival.py, from R's survival package.
# Run from this folder:  Rscript survival.R   (writes survival_expected.json)
#
# Versions used to generate survival_expected.json (sessionInfo()):
#   R version 4.2.2 Patched (2022-11-10 r83330), Debian GNU/Linux 12 (bookworm)
#   survival_3.5-3, jsonlite_1.8.4 (Debian packages r-cran-survival 3.5-3-1,
#   r-cran-jsonlite 1.8.4+dfsg-1)
# cox.zph: survival >= 3.0 computes the score test with the full 2p x 2p information matrix
# (the pre-3.0 version used an averaged-variance approximation); transform = "km" (default).
#
# Inputs (committed beside this script):
#   survival_data.csv  three arms of unequal size, weekly (tied) times, heavy censoring in APPX
#                      (median not reached), stratum `severity`; CDISC CNSR (0 = event),
#                      made by make_data.R
#   survival_aml.csv   survival::aml (acute myelogenous leukaemia, Miller 1997), two arms
#   survival_edge.csv  hand-made: arm A's curve is exactly 0.5 on a flat stretch (median is the
#                      midpoint), arm B's curve falls to 0 at its last time

library(survival)
library(jsonlite)

main <- read.csv("survival_data.csv")
main$event <- as.integer(main$cnsr == 0)
main$arm <- factor(main$arm, levels = c("CTL", "APP", "APPX"))
aml_d <- read.csv("survival_aml.csv")
aml_d$x <- factor(aml_d$x, levels = c("Maintained", "Nonmaintained"))
edge <- read.csv("survival_edge.csv")
edge$event <- as.integer(edge$cnsr == 0)

km_curves <- function(fit, groups) {
  out <- list()
  s <- if (is.null(fit$strata)) rep(groups[1], length(fit$time)) else
    rep(sub("^[^=]*=", "", names(fit$strata)), fit$strata)
  for (g in groups) {
    i <- s == g
    out[[g]] <- list(time = fit$time[i], n_risk = fit$n.risk[i], n_event = fit$n.event[i],
                     n_censor = fit$n.censor[i], surv = fit$surv[i], std_err = fit$std.err[i],
                     lower = fit$lower[i], upper = fit$upper[i])
  }
  out
}

medians <- function(fit) {
  q <- quantile(fit, probs = 0.5)
  nm <- sub("^[^=]*=", "", rownames(q$quantile))
  out <- list()
  for (k in seq_along(nm)) {
    out[[nm[k]]] <- list(median = unname(q$quantile[k, 1]), lower = unname(q$lower[k, 1]),
                         upper = unname(q$upper[k, 1]))
  }
  out
}

at_risk <- function(fit, times) {
  sm <- summary(fit, times = times, extend = TRUE)
  nm <- sub("^[^=]*=", "", as.character(sm$strata))
  out <- list()
  for (g in unique(nm)) out[[g]] <- list(time = sm$time[nm == g], n_risk = sm$n.risk[nm == g])
  out
}

logrank <- function(sd) {
  list(chisq = unname(sd$chisq), df = length(sd$n) - 1,
       p = pchisq(sd$chisq, length(sd$n) - 1, lower.tail = FALSE),
       observed = unname(if (is.matrix(sd$obs)) rowSums(sd$obs) else sd$obs),
       expected = unname(if (is.matrix(sd$exp)) rowSums(sd$exp) else sd$exp),
       groups = sub("^[^=]*=", "", names(sd$n)))
}

cox <- function(fit) {
  s <- summary(fit)
  ci <- exp(confint(fit))
  zph <- cox.zph(fit)  # transform = "km", terms = TRUE, global = TRUE
  list(coef = unname(coef(fit)), se = unname(sqrt(diag(vcov(fit)))),
       hr = unname(exp(coef(fit))), lower = unname(ci[, 1]), upper = unname(ci[, 2]),
       p = unname(s$coefficients[, "Pr(>|z|)"]), names = names(coef(fit)),
       loglik = fit$loglik[2],
       zph = list(terms = rownames(zph$table), chisq = unname(zph$table[, "chisq"]),
                  df = unname(zph$table[, "df"]), p = unname(zph$table[, "p"])))
}

zph_table <- function(fit, transform) {
  z <- cox.zph(fit, transform = transform)
  list(terms = rownames(z$table), chisq = unname(z$table[, "chisq"]),
       df = unname(z$table[, "df"]), p = unname(z$table[, "p"]))
}

fit_main <- survfit(Surv(aval, event) ~ arm, data = main, conf.type = "log-log")
fit_aml <- survfit(Surv(time, status) ~ x, data = aml_d, conf.type = "log-log")
fit_edge <- survfit(Surv(aval, event) ~ arm, data = edge, conf.type = "log-log")
fit_main90 <- survfit(Surv(aval, event) ~ arm, data = main, conf.type = "log-log", conf.int = 0.9)

two <- droplevels(main[main$arm != "APPX", ])

cox_arm <- coxph(Surv(aval, event) ~ arm, data = main, ties = "efron")
cox_adj <- coxph(Surv(aval, event) ~ arm + baseline, data = main, ties = "efron")
cox_strat <- coxph(Surv(aval, event) ~ arm + strata(severity), data = main, ties = "efron")
cox_aml <- coxph(Surv(time, status) ~ x, data = aml_d, ties = "efron")

expected <- list(
  km = list(main = km_curves(fit_main, c("CTL", "APP", "APPX")),
            aml = km_curves(fit_aml, c("Maintained", "Nonmaintained")),
            edge = km_curves(fit_edge, c("A", "B")),
            main90 = km_curves(fit_main90, c("CTL", "APP", "APPX"))),
  median = list(main = medians(fit_main), aml = medians(fit_aml), edge = medians(fit_edge),
                main90 = medians(fit_main90)),
  at_risk = list(times = c(0, 14, 28, 42, 56, 70, 84, 91),
                 main = at_risk(fit_main, c(0, 14, 28, 42, 56, 70, 84, 91))),
  logrank = list(
    main = logrank(survdiff(Surv(aval, event) ~ arm, data = main)),
    main_strat = logrank(survdiff(Surv(aval, event) ~ arm + strata(severity), data = main)),
    two_strat = logrank(survdiff(Surv(aval, event) ~ arm + strata(severity), data = two)),
    aml = logrank(survdiff(Surv(time, status) ~ x, data = aml_d))),
  cox = list(arm = cox(cox_arm), adjusted = cox(cox_adj), stratified = cox(cox_strat),
             aml = cox(cox_aml)),
  zph_transforms = list(identity = zph_table(cox_adj, "identity"),
                        rank = zph_table(cox_adj, "rank"),
                        log = zph_table(cox_adj, "log"))
)

writeLines(toJSON(expected, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "survival_expected.json")
print(sessionInfo())
