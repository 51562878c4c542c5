# Expected values for tests/analysis/test_binary.py and the subgroup tests, from base R.
# Run from this folder:  Rscript binary.R   (writes binary_expected.json)
#
# Versions used to generate binary_expected.json (sessionInfo()):
#   R version 4.2.2 Patched (2022-11-10 r83330), Debian GNU/Linux 12 (bookworm)
#   stats (base R), jsonlite_1.8.4 (Debian r-cran-jsonlite 1.8.4+dfsg-1)
#
# Wilson intervals: prop.test(x, n, correct = FALSE)$conf.int; the Newcombe hybrid score
# interval (Newcombe 1998, method 10) is assembled from those Wilson limits.
# Risk ratio: glm(binomial(link = "log")) on the two arms, Wald limits (confint.default).
# Odds ratios: glm(binomial) with Wald limits (confint.default) and z-test p-values.
# Subgroups: per-level unadjusted log odds ratio (glm on the level's rows) and the Wald test of
# the subgroup x arm interaction in glm(response ~ subgroup * arm), which for this saturated
# model equals Cochran's Q of the per-level log odds ratios.
# Input: binary_data.csv (three arms of 80, 95 and 60, missing outcomes), made by make_data.R.

library(jsonlite)

# glm fits converged well past the 1e-6 acceptance tolerance (the default epsilon is 1e-8 on
# the deviance, which leaves about 1e-6 in some limits).
tight <- glm.control(epsilon = 1e-14, maxit = 100)

wilson <- function(x, n, conf = 0.95) unname(prop.test(x, n, correct = FALSE, conf.level = conf)$conf.int[1:2])

newcombe <- function(x1, n1, x2, n2, conf = 0.95) {
  p1 <- x1 / n1; p2 <- x2 / n2
  w1 <- if (x1 == 0) c(0, wilson(x1, n1, conf)[2]) else wilson(x1, n1, conf)
  w2 <- if (x2 == 0) c(0, wilson(x2, n2, conf)[2]) else wilson(x2, n2, conf)
  d <- p1 - p2
  c(estimate = d,
    lower = d - sqrt((p1 - w1[1])^2 + (w2[2] - p2)^2),
    upper = d + sqrt((w1[2] - p1)^2 + (p2 - w2[1])^2))
}

expand <- function(x1, n1, x2, n2) {
  data.frame(arm = factor(rep(c("REF", "ARM"), c(n2, n1)), levels = c("REF", "ARM")),
             y = c(rep(1:0, c(x2, n2 - x2)), rep(1:0, c(x1, n1 - x1))))
}

glm_row <- function(fit, term) {
  s <- summary(fit)$coefficients
  ci <- confint.default(fit)
  list(estimate = exp(unname(coef(fit)[term])), log = unname(coef(fit)[term]),
       se = unname(s[term, "Std. Error"]), lower = exp(unname(ci[term, 1])),
       upper = exp(unname(ci[term, 2])), p = unname(s[term, "Pr(>|z|)"]))
}

rr_glm <- function(d) glm_row(glm(y ~ arm, family = binomial(link = "log"), data = d, control = tight), "armARM")

# --- DOMAIN.md test vector and Newcombe (1998) examples ---------------------------------------
vec <- expand(40, 100, 25, 100)
test_vector <- list(rd = as.list(newcombe(40, 100, 25, 100)), rr = rr_glm(vec),
                    wilson_1 = wilson(40, 100), wilson_2 = wilson(25, 100))
examples <- list(c(56, 70, 48, 80), c(9, 10, 3, 10), c(5, 56, 0, 29), c(0, 10, 0, 20),
                 c(0, 10, 0, 10), c(10, 10, 0, 20), c(10, 10, 0, 10))
newcombe_examples <- lapply(examples, function(e) {
  r <- newcombe(e[1], e[2], e[3], e[4]); list(counts = e, estimate = r[[1]], lower = r[[2]], upper = r[[3]])
})

# --- the committed data ----------------------------------------------------------------------
d <- read.csv("binary_data.csv")
d <- d[!is.na(d$response), ]
d$arm <- factor(d$arm, levels = c("CTL", "APP", "APPX"))
d$site <- factor(d$site)

by_arm <- list()
for (a in c("APP", "APPX")) {
  x1 <- sum(d$response[d$arm == a]); n1 <- sum(d$arm == a)
  x2 <- sum(d$response[d$arm == "CTL"]); n2 <- sum(d$arm == "CTL")
  two <- droplevels(d[d$arm %in% c("CTL", a), ])
  two$y <- two$response
  two$arm2 <- factor(ifelse(two$arm == a, "ARM", "REF"), levels = c("REF", "ARM"))
  rr <- glm_row(glm(y ~ arm2, family = binomial(link = "log"), data = two, control = tight), "arm2ARM")
  by_arm[[a]] <- list(events = x1, n = n1, events_ref = x2, n_ref = n2,
                      wilson = wilson(x1, n1), rd = as.list(newcombe(x1, n1, x2, n2)),
                      rd90 = as.list(newcombe(x1, n1, x2, n2, conf = 0.90)), rr = rr)
}
term <- function(a) paste0("arm", a)
fit_un <- glm(response ~ arm, family = binomial, data = d, control = tight)
fit_base <- glm(response ~ arm + baseline, family = binomial, data = d, control = tight)
fit_site <- glm(response ~ arm + baseline + site, family = binomial, data = d, control = tight)
odds <- list(
  unadjusted = lapply(c(APP = "APP", APPX = "APPX"), function(a) glm_row(fit_un, term(a))),
  baseline = lapply(c(APP = "APP", APPX = "APPX"), function(a) glm_row(fit_base, term(a))),
  baseline_site = lapply(c(APP = "APP", APPX = "APPX"), function(a) glm_row(fit_site, term(a)))
)

# --- subgroups (APP vs CTL) ----------------------------------------------------------------------
two <- droplevels(d[d$arm %in% c("CTL", "APP"), ])
subgroup <- function(var) {
  levels <- sort(unique(as.character(two[[var]])))
  per <- lapply(levels, function(l) {
    s <- two[two[[var]] == l, ]
    c(list(level = as.character(l), n = nrow(s)),
      glm_row(glm(response ~ arm, family = binomial, data = s, control = tight), "armAPP"))
  })
  two$g <- factor(two[[var]])
  fit <- glm(response ~ g * arm, family = binomial, data = two, control = tight)
  idx <- grep(":", names(coef(fit)))
  b <- coef(fit)[idx]; V <- vcov(fit)[idx, idx, drop = FALSE]
  wald <- drop(t(b) %*% solve(V) %*% b)
  list(levels = per, interaction_chisq = wald, interaction_df = length(idx),
       interaction_p = pchisq(wald, length(idx), lower.tail = FALSE))
}
subgroups <- list(site = subgroup("site"), severity = subgroup("severity"))

expected <- list(test_vector = test_vector, newcombe_examples = newcombe_examples,
                 by_arm = by_arm, odds = odds, subgroups = subgroups)
writeLines(toJSON(expected, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "binary_expected.json")
print(sessionInfo())
