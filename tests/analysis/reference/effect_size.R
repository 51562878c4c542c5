# Expected values for tests/analysis/test_effect_size.py, from base R.
# Run from this folder:  Rscript effect_size.R   (writes effect_size_expected.json)
#
# Versions used to generate effect_size_expected.json (sessionInfo()):
#   R version 4.2.2 Patched (2022-11-10 r83330), Debian GNU/Linux 12 (bookworm)
#   stats (base R), jsonlite_1.8.4 (Debian r-cran-jsonlite 1.8.4+dfsg-1)
#
# Hedges' g by DOMAIN.md section 3: d = (M1 - M2) / pooled SD, J = 1 - 3 / (4 df - 1),
# df = n1 + n2 - 2, Var(d) = (n1 + n2) / (n1 n2) + d^2 / (2 (n1 + n2)), SE(g) = J SE(d),
# limits g -/+ qnorm(0.975) SE(g); means and SDs from R's mean() and sd().
# Model-adjusted standardized difference: the arm coefficient of lm(week 8 ~ arm + baseline)
# with confint(), divided by the pooled within-arm SD of the baseline PHQ-9 (all participants
# of the two arms).
# Input: continuous_data.csv (three arms, missing visits), made by make_data.R.

library(jsonlite)

d <- read.csv("continuous_data.csv", stringsAsFactors = FALSE)
base <- d[d$visit == "BASELINE", c("id", "arm", "phq9")]
names(base)[3] <- "baseline"
wk8 <- d[d$visit == "WEEK 8" & !is.na(d$phq9), c("id", "phq9")]
names(wk8)[2] <- "week8"
w <- merge(base, wk8, by = "id")
w$arm <- factor(w$arm, levels = c("CTL", "APP", "APPX"))

pooled_sd <- function(x1, x2) {
  n1 <- length(x1); n2 <- length(x2)
  sqrt(((n1 - 1) * var(x1) + (n2 - 1) * var(x2)) / (n1 + n2 - 2))
}

hedges <- function(x1, x2, conf = 0.95) {
  n1 <- length(x1); n2 <- length(x2)
  s <- pooled_sd(x1, x2)
  dd <- (mean(x1) - mean(x2)) / s
  J <- 1 - 3 / (4 * (n1 + n2 - 2) - 1)
  se_d <- sqrt((n1 + n2) / (n1 * n2) + dd^2 / (2 * (n1 + n2)))
  z <- qnorm(1 - (1 - conf) / 2)
  g <- J * dd
  list(n1 = n1, n2 = n2, mean1 = mean(x1), mean2 = mean(x2), sd1 = sd(x1), sd2 = sd(x2),
       pooled_sd = s, d = dd, J = J, g = g, se = J * se_d, lower = g - z * J * se_d,
       upper = g + z * J * se_d)
}

fit <- lm(week8 ~ arm + baseline, data = w)
ci <- confint(fit)
out <- list()
for (a in c("APP", "APPX")) {
  term <- paste0("arm", a)
  b1 <- base$baseline[base$arm == a]
  b0 <- base$baseline[base$arm == "CTL"]
  s <- pooled_sd(b1, b0)
  out[[a]] <- list(
    hedges = hedges(w$week8[w$arm == a], w$week8[w$arm == "CTL"]),
    hedges90 = hedges(w$week8[w$arm == a], w$week8[w$arm == "CTL"], conf = 0.90),
    ancova = list(difference = unname(coef(fit)[term]), lower = unname(ci[term, 1]),
                  upper = unname(ci[term, 2]),
                  baseline_sd = c(sd(b1), sd(b0)), baseline_n = c(length(b1), length(b0)),
                  pooled_baseline_sd = s,
                  standardized = unname(coef(fit)[term]) / s,
                  standardized_lower = unname(ci[term, 1]) / s,
                  standardized_upper = unname(ci[term, 2]) / s))
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "effect_size_expected.json")
print(sessionInfo())
