# Synthetic input data for the reference tests of analysis/ (descriptive statistics, effect
# sizes, binary endpoints, survival, subgroups). Run from this folder:
#   Rscript make_data.R
# It writes continuous_data.csv, binary_data.csv and survival_data.csv. The CSV files are
# committed; the expected values are computed from them by the other scripts here, so this
# script only documents how the data were made (R's default RNG, set.seed below).
#
# Generated with R 4.2.2 Patched (2022-11-10 r83330), Debian GNU/Linux 12 (bookworm).

set.seed(20240611)

arms <- c("CTL", "APP", "APPX")
sizes <- c(CTL = 70, APP = 55, APPX = 35)  # unbalanced, three arms
sites <- c("S01", "S02", "S03")

# --- continuous: PHQ-9 at baseline, week 4 and week 8, with missing visits ---------------
n <- sum(sizes)
arm <- rep(arms, times = sizes)
id <- sprintf("P%03d", seq_len(n))
site <- sample(sites, n, replace = TRUE, prob = c(0.5, 0.3, 0.2))
sex <- sample(c("F", "M"), n, replace = TRUE, prob = c(0.65, 0.35))
base <- pmin(27, pmax(10, round(rnorm(n, 16, 4))))
effect <- c(CTL = 0, APP = -2.5, APPX = -3.5)[arm]
wk4 <- pmin(27, pmax(0, round(base - 2 + 0.6 * effect + rnorm(n, 0, 4))))
wk8 <- pmin(27, pmax(0, round(base - 4 + effect + rnorm(n, 0, 5))))
# monotone dropout: some miss week 8 only, some miss both post-baseline visits
drop_after_base <- runif(n) < 0.08
drop_after_wk4 <- runif(n) < 0.12
# intermittent: week 4 missed but week 8 observed
skip_wk4 <- !drop_after_base & !drop_after_wk4 & runif(n) < 0.07
wk4[drop_after_base | skip_wk4] <- NA
wk8[drop_after_base | drop_after_wk4] <- NA
continuous <- data.frame(
  id = rep(id, 3),
  arm = rep(arm, 3),
  site = rep(site, 3),
  sex = rep(sex, 3),
  visit = rep(c("BASELINE", "WEEK 4", "WEEK 8"), each = n),
  phq9 = c(base, wk4, wk8)
)
band <- cut(continuous$phq9, c(-1, 4, 9, 14, 19, 27),
            labels = c("minimal", "mild", "moderate", "moderately severe", "severe"))
continuous$severity <- as.character(band)
write.csv(continuous, "continuous_data.csv", row.names = FALSE, na = "")

# --- binary: response at week 8 (>= 50% reduction), three arms, unequal sizes ------------
bsizes <- c(CTL = 80, APP = 95, APPX = 60)
barm <- rep(arms, times = bsizes)
nb <- length(barm)
bbase <- pmin(27, pmax(10, round(rnorm(nb, 16, 4))))
bsite <- sample(sites, nb, replace = TRUE, prob = c(0.45, 0.35, 0.2))
lp <- -0.9 + c(CTL = 0, APP = 0.7, APPX = 1.0)[barm] - 0.08 * (bbase - 16) +
  c(S01 = 0, S02 = 0.3, S03 = -0.4)[bsite] + ifelse(bsite == "S03" & barm != "CTL", 0.6, 0)
resp <- rbinom(nb, 1, plogis(lp))
resp[runif(nb) < 0.06] <- NA  # missing outcome
binary <- data.frame(
  id = sprintf("B%03d", seq_len(nb)),
  arm = barm,
  site = bsite,
  baseline = bbase,
  severity = ifelse(bbase >= 20, "severe", "moderate"),
  response = resp
)
write.csv(binary, "binary_data.csv", row.names = FALSE, na = "")

# --- survival: time to first response, CDISC CNSR (0 = event), ties, one stratum ---------
ssizes <- c(CTL = 70, APP = 55, APPX = 35)
sarm <- rep(arms, times = ssizes)
ns <- length(sarm)
severity <- sample(c("moderate", "severe"), ns, replace = TRUE, prob = c(0.6, 0.4))
sbase <- ifelse(severity == "severe", sample(20:27, ns, TRUE), sample(10:19, ns, TRUE))
rate <- 0.012 * c(CTL = 1, APP = 1.8, APPX = 0.5)[sarm] * ifelse(severity == "severe", 0.6, 1)
event_day <- ceiling(rexp(ns, rate) / 7) * 7  # weekly assessments: many tied times
dropout_day <- ifelse(runif(ns) < 0.25, sample(7:84, ns, TRUE), Inf)
dropout_day[sarm == "APPX"] <- pmin(dropout_day[sarm == "APPX"],
                                    ifelse(runif(sum(sarm == "APPX")) < 0.5,
                                           sample(7:60, sum(sarm == "APPX"), TRUE), Inf))
end_day <- pmin(dropout_day, 84)  # administrative censoring at week 12
aval <- pmin(event_day, end_day)
cnsr <- ifelse(event_day <= end_day, 0L, 1L)
survival <- data.frame(
  id = sprintf("T%03d", seq_len(ns)),
  arm = sarm,
  severity = severity,
  baseline = sbase,
  aval = aval,
  cnsr = cnsr
)
write.csv(survival, "survival_data.csv", row.names = FALSE, na = "")
