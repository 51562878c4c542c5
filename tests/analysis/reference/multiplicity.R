# Expected values for tests/analysis/test_multiplicity.py, from base R.
# Run from this folder:  Rscript multiplicity.R   (writes multiplicity_expected.json)
#
# Versions used to generate multiplicity_expected.json (sessionInfo()):
#   R version 4.2.2 Patched (2022-11-10 r83330), Debian GNU/Linux 12 (bookworm)
#   stats (base R), jsonlite_1.8.4 (Debian r-cran-jsonlite 1.8.4+dfsg-1)
#
# Holm: p.adjust(p, method = "holm"). Fixed sequence: the adjusted p-value of the k-th
# hypothesis in the pre-specified order is max(p_1, ..., p_k) (cummax), and hypothesis k is
# rejected when all of 1..k have p <= alpha.

library(jsonlite)

cases <- list(
  primary_and_key_secondaries = c(0.012, 0.030, 0.004, 0.20, 0.049),
  stops_early = c(0.001, 0.070, 0.002, 0.003),
  ties = c(0.01, 0.01, 0.04, 0.04, 0.5),
  capped = c(0.30, 0.45, 0.90),
  single = c(0.03)
)
out <- lapply(cases, function(p) {
  list(p = p, holm = p.adjust(p, method = "holm"), fixed_sequence = cummax(p),
       fixed_rejected = cumsum(p > 0.05) == 0)
})
writeLines(toJSON(out, auto_unbox = FALSE, digits = NA, na = "null", pretty = TRUE),
           "multiplicity_expected.json")
print(sessionInfo())
