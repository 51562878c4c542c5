# Reference values for analysis.ancova: lm(chg ~ arm + base + site) at the last visit, with
# emmeans LS means and differences against the control arm (no multiplicity adjustment).
#
# R from Debian's packages: apt-get install --no-install-recommends r-base-core r-cran-emmeans
# Run from this folder: Rscript ancova.R   (writes ancova_expected.json)
# Inputs: mmrm_<name>.csv written by mmrm_data.py; participants without the last visit are
# left out (complete cases at that visit).
#
# Generated with (sessionInfo()):
#   R version 4.2.2 Patched (2022-11-10 r83330), Debian GNU/Linux 12 (bookworm)
#   emmeans_1.8.4-1  estimability_1.4.1
suppressMessages(library(emmeans))
source("json_writer.R")

fit_one <- function(name) {
  d <- read.csv(sprintf("mmrm_%s.csv", name), stringsAsFactors = FALSE)
  d <- d[d$visit == max(d$visit) & !is.na(d$chg), ]
  arms <- c("control", setdiff(sort(unique(d$arm)), "control"))
  d$arm <- factor(d$arm, levels = arms)
  d$site <- factor(d$site)
  fit <- lm(chg ~ arm + base + site, data = d)
  emm <- emmeans(fit, ~ arm)
  s <- as.data.frame(summary(emm))
  cs <- as.data.frame(summary(contrast(emm, "trt.vs.ctrl", ref = 1, adjust = "none"),
                              infer = c(TRUE, TRUE), adjust = "none"))
  list(
    n = nrow(d),
    coefficients = as.list(coef(fit)),
    residual_sd = summary(fit)$sigma,
    residual_df = fit$df.residual,
    lsmeans = lapply(seq_len(nrow(s)), function(i) list(
      arm = as.character(s$arm[i]), estimate = s$emmean[i], se = s$SE[i], df = s$df[i],
      ci_low = s$lower.CL[i], ci_high = s$upper.CL[i])),
    differences = lapply(seq_len(nrow(cs)), function(i) list(
      contrast = as.character(cs$contrast[i]), estimate = cs$estimate[i], se = cs$SE[i],
      df = cs$df[i], ci_low = cs$lower.CL[i], ci_high = cs$upper.CL[i],
      t = cs$t.ratio[i], p_value = cs$p.value[i]))
  )
}

names <- c("balanced", "three_arms", "monotone", "intermittent")
result <- lapply(names, fit_one)
names(result) <- names
writeLines(to_json(result), "ancova_expected.json")
print(sessionInfo())
