# A minimal JSON writer in base R (no jsonlite needed): named lists become objects, unnamed
# lists and vectors of length != 1 become arrays, numbers keep 17 significant digits.
to_json <- function(x, indent = 0) {
  pad <- strrep(" ", indent + 2)
  end <- strrep(" ", indent)
  if (is.null(x)) return("null")
  if (is.list(x)) {
    if (length(x) == 0) return(if (is.null(names(x))) "[]" else "{}")
    parts <- vapply(x, to_json, character(1), indent = indent + 2)
    if (!is.null(names(x))) {
      parts <- paste0(pad, '"', names(x), '": ', parts)
      return(paste0("{\n", paste(parts, collapse = ",\n"), "\n", end, "}"))
    }
    return(paste0("[\n", paste0(pad, parts, collapse = ",\n"), "\n", end, "]"))
  }
  scalar <- function(v) {
    if (is.na(v)) return("null")
    if (is.character(v) || is.factor(v)) return(paste0('"', as.character(v), '"'))
    if (is.logical(v)) return(if (v) "true" else "false")
    if (!is.finite(v)) return("null")
    sprintf("%.17g", as.double(v))
  }
  if (is.matrix(x)) {
    rows <- lapply(seq_len(nrow(x)), function(i) as.vector(x[i, ]))
    return(to_json(lapply(rows, function(r) as.list(r)), indent))
  }
  if (length(x) == 1 && is.null(names(x))) return(scalar(x))
  if (!is.null(names(x))) return(to_json(as.list(x), indent))
  paste0("[", paste(vapply(as.list(x), scalar, character(1)), collapse = ", "), "]")
}
