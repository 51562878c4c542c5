# Expected values for tests/analysis/test_descriptive.py, from base R.
# Run from this folder:  Rscript descriptive.R   (writes descriptive_expected.json)
#
# Versions used to generate descriptive_expected.json (sessionInfo()):
#   R version 4.2.2 Patched (2022-11-10 r83330), Debian GNU/Linux 12 (bookworm)
#   stats (base R), jsonlite_1.8.4 (Debian r-cran-jsonlite 1.8.4+dfsg-1)
#
# Continuous: length, mean, sd, median, quantile(type = 7) and type 6 quartiles, min, max of the
# non-missing PHQ-9 totals by arm and visit, and pooled over arms by visit.
# Categorical: table() counts and percentages of non-missing values by arm and visit.
# Input: continuous_data.csv (three arms of 70, 55 and 35; monotone dropout and intermittent
# missed visits), made by make_data.R.

library(jsonlite)

d <- read.csv("continuous_data.csv", stringsAsFactors = FALSE)

summ <- function(x) {
  y <- x[!is.na(x)]
  list(n = length(y), n_missing = sum(is.na(x)), mean = mean(y), sd = sd(y), median = median(y),
       q1 = unname(quantile(y, 0.25, type = 7)), q3 = unname(quantile(y, 0.75, type = 7)),
       q1_type6 = unname(quantile(y, 0.25, type = 6)), q3_type6 = unname(quantile(y, 0.75, type = 6)),
       min = min(y), max = max(y))
}

continuous <- list()
for (v in unique(d$visit)) {
  for (a in c(unique(d$arm), "Total")) {
    x <- if (a == "Total") d$phq9[d$visit == v] else d$phq9[d$visit == v & d$arm == a]
    continuous[[length(continuous) + 1]] <- c(list(arm = a, visit = v), summ(x))
  }
}

categorical <- list()
for (v in unique(d$visit)) {
  for (a in c(unique(d$arm), "Total")) {
    x <- if (a == "Total") d$severity[d$visit == v] else d$severity[d$visit == v & d$arm == a]
    tab <- table(x[!is.na(x) & x != ""])
    categorical[[length(categorical) + 1]] <- list(
      arm = a, visit = v, levels = names(tab), counts = as.integer(tab),
      percent = unname(100 * as.numeric(tab) / sum(tab)), n_missing = sum(is.na(x) | x == ""))
  }
}

writeLines(toJSON(list(continuous = continuous, categorical = categorical),
                  auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "descriptive_expected.json")
print(sessionInfo())
