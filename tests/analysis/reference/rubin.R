# Reference values for analysis.imputation.rubin_pool: Rubin's rules with the Barnard-Rubin
# degrees of freedom, as mice::pool.scalar computes them (rule = "rubin1987").
#
# R from Debian's packages: apt-get install --no-install-recommends r-base-core r-cran-mice
# Run from this folder: Rscript rubin.R   (writes rubin_expected.json)
#
# Generated with (sessionInfo()):
#   R version 4.2.2 Patched (2022-11-10 r83330), Debian GNU/Linux 12 (bookworm)
#   mice_3.15.0
suppressMessages(library(mice))
source("json_writer.R")

cases <- list(
  # five imputations, moderate missing information, small complete-data df
  list(name = "small", Q = c(-1.52, -1.31, -1.78, -1.44, -1.60),
       U = c(0.241, 0.236, 0.255, 0.248, 0.239), n = 60, k = 5),
  # twenty imputations, large complete-data df
  list(name = "twenty", Q = -2 + sin(1:20) / 5, U = 0.4 + cos(1:20) / 50, n = 500, k = 8),
  # infinite complete-data df (the classic Rubin 1987 df)
  list(name = "infinite", Q = c(10.2, 9.7, 10.9, 10.1, 9.5, 10.4), U = rep(0.8, 6),
       n = Inf, k = 1),
  # almost no between-imputation variance (lambda below mice's floor of 1e-4)
  list(name = "tiny_between", Q = c(1, 1 + 1e-6, 1 - 1e-6), U = c(0.5, 0.5, 0.5),
       n = 100, k = 3)
)
out <- lapply(cases, function(cs) {
  r <- pool.scalar(cs$Q, cs$U, n = cs$n, k = cs$k)
  list(Q = cs$Q, U = cs$U, df_complete = cs$n - cs$k, qbar = r$qbar, ubar = r$ubar,
       b = r$b, t = r$t, df = r$df, r = r$r, fmi = r$fmi)
})
names(out) <- vapply(cases, function(cs) cs$name, character(1))
writeLines(to_json(out), "rubin_expected.json")
print(sessionInfo())
