# The half of the file API that runs inside an R kernel (IRkernel): the calls of
# broker/files/protocol.py.
#
# The broker never loads this file itself: broker/files/r_helper.py sends its source with
# every call, inside local() (the user's workspace is untouched), after MIME and TEMP_MARK
# and before answer(CALL, DATA): the call as base64 of its JSON, and the bytes of an
# upload's chunk as base64 (IRkernel drops a request's buffers). It uses base R and
# IRkernel's own dependencies only: jsonlite, base64enc and IRdisplay, whose
# publish_mimebundle carries the answer (IRkernel publishes display data for silent
# requests, and nothing else).
#
# Paths are resolved with every symbolic link followed (real_path, which, like Python's
# os.path.realpath, also resolves paths that do not exist yet) and refused outside the
# working directory. R has no lstat and no fstat: a file's identity is its size, mtime
# and ctime, checked before and after each read; a broken link is listed with the
# length of its target as size and no time (0); a file of size 0 is checked with the
# shell's `test -f` so that a FIFO or a device is refused instead of blocking the kernel.

refusal <- function(error) {
  structure(class = c("kb_refusal", "error", "condition"),
            list(message = error$reason, call = NULL, error = error))
}

refuse <- function(reason, path = "") stop(refusal(list(reason = reason, path = path)))

# The errno name of a failure R reports in words (strerror's, in its messages).
ERRNO_WORDS <- c(ENOENT = "No such file or directory", EACCES = "Permission denied",
                 EPERM = "Operation not permitted", EROFS = "Read-only file system",
                 ENOSPC = "No space left on device", EDQUOT = "Disk quota exceeded",
                 ENOTEMPTY = "Directory not empty", ELOOP = "Too many levels of symbolic links")

os_refuse <- function(errno, path, detail = "") {
  stop(refusal(list(reason = "os", errno = errno, path = path, detail = detail)))
}

# Evaluate a filesystem call that reports failure as FALSE, a warning or an error; refuse
# with the errno its message names.
attempt <- function(expr, path) {
  said <- character()
  ok <- withCallingHandlers(
    tryCatch(expr, error = function(e) {
      said <<- c(said, conditionMessage(e))
      FALSE
    }),
    warning = function(w) {
      said <<- c(said, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  if (is.logical(ok) && length(ok) == 1 && !isTRUE(ok)) {
    words <- paste(said, collapse = "; ")
    hit <- names(ERRNO_WORDS)[vapply(ERRNO_WORDS, grepl, logical(1), x = words, fixed = TRUE)]
    os_refuse(if (length(hit)) hit[1] else "", path, words)
  }
  ok
}

# The physical path of an absolute path, every symbolic link followed; components that
# do not exist are kept as they are.
real_path <- function(path) {
  todo <- Filter(nzchar, strsplit(path, "/", fixed = TRUE)[[1]])
  cur <- ""
  hops <- 0
  while (length(todo)) {
    part <- todo[1]
    todo <- todo[-1]
    if (part == ".") next
    if (part == "..") {
      cur <- sub("/[^/]*$", "", cur)
      next
    }
    nxt <- paste0(cur, "/", part)
    link <- Sys.readlink(nxt)
    if (is.na(link) || !nzchar(link)) {
      cur <- nxt
      next
    }
    hops <- hops + 1
    if (hops > 40) os_refuse("ELOOP", path)
    if (startsWith(link, "/")) cur <- ""
    todo <- c(Filter(nzchar, strsplit(link, "/", fixed = TRUE)[[1]]), todo)
  }
  if (nzchar(cur)) cur else "/"
}

root_dir <- function() real_path(getwd())

inside <- function(root, real) {
  root == "/" || real == root || startsWith(real, paste0(root, "/"))
}

resolve <- function(rel) {
  if (startsWith(rel, "/") || ".." %in% strsplit(rel, "/", fixed = TRUE)[[1]]) {
    refuse("bad_path", rel)
  }
  root <- root_dir()
  real <- real_path(if (nzchar(rel)) paste0(root, "/", rel) else root)
  if (!inside(root, real)) refuse("outside", rel)
  real
}

parent_of <- function(rel) if (grepl("/", rel, fixed = TRUE)) sub("/[^/]*$", "", rel) else ""

child_of <- function(rel, name) if (nzchar(rel)) paste0(rel, "/", name) else name

model <- function(rel, real, info) {
  directory <- isTRUE(info$isdir)
  size <- info$size
  mtime <- as.numeric(info$mtime)
  if (is.na(size)) {  # a broken link: describe the link itself, as far as R can
    size <- nchar(Sys.readlink(real), type = "bytes")
    mtime <- 0
  }
  list(name = basename(rel), path = rel, type = if (directory) "directory" else "file",
       size = if (directory) NULL else size, mtime = mtime)
}

stat <- function(real, rel) {
  info <- file.info(real, extra_cols = TRUE)
  if (is.na(info$isdir)) os_refuse("ENOENT", rel)
  info
}

ident <- function(info) {
  sprintf("%.0f:%.6f:%.6f", info$size, as.numeric(info$mtime), as.numeric(info$ctime))
}

regular <- function(real, info) {
  !isTRUE(info$isdir) && (info$size > 0 || system2("test", c("-f", shQuote(real))) == 0)
}

base64 <- function(bytes) if (length(bytes)) base64enc::base64encode(bytes) else ""

read_bytes <- function(real, rel, offset, n) {
  con <- attempt(file(real, "rb"), rel)
  on.exit(close(con))
  if (offset > 0) seek(con, offset)
  readBin(con, "raw", n)
}

listing <- function(rel, real, max_entries) {
  names <- enc2utf8(list.files(real, all.files = TRUE, no.. = TRUE))  # radix sorts marked text
  names <- sort(names[!grepl(TEMP_MARK, names, fixed = TRUE)], method = "radix")
  shown <- head(names, max_entries)
  paths <- file.path(real, shown)
  infos <- file.info(paths, extra_cols = FALSE)
  entries <- lapply(seq_along(shown), function(i) {
    model(child_of(rel, shown[i]), paths[i], infos[i, ])
  })
  list(entries = entries, truncated = length(names) > max_entries)
}

describe <- function(rel, max_entries, first_bytes) {
  real <- resolve(rel)
  info <- stat(real, rel)
  if (isTRUE(info$isdir)) return(c(model(rel, real, info), listing(rel, real, max_entries)))
  if (!regular(real, info)) refuse("not_regular", rel)
  data <- read_bytes(real, rel, 0, first_bytes)
  if (ident(stat(real, rel)) != ident(info)) refuse("changed", rel)
  c(model(rel, real, info), list(ident = ident(info), data = base64(data)))
}

read_chunk <- function(rel, offset, n, expected) {
  real <- resolve(rel)
  if (ident(stat(real, rel)) != expected) refuse("changed", rel)
  data <- read_bytes(real, rel, offset, n)
  if (ident(stat(real, rel)) != expected) refuse("changed", rel)
  list(data = base64(data))
}

temp_path <- function(real, transfer) {
  file.path(dirname(real), paste0(".", basename(real), TEMP_MARK, transfer))
}

check_temp <- function(temp) {
  if (!grepl(TEMP_MARK, basename(temp), fixed = TRUE) || !inside(root_dir(), real_path(temp))) {
    refuse("not_upload")
  }
  temp
}

begin_upload <- function(rel, transfer) {
  if (!nzchar(rel)) refuse("no_name")
  real <- resolve(rel)
  if (dir.exists(real)) refuse("is_directory", rel)
  if (!dir.exists(dirname(real))) {
    attempt(dir.create(dirname(real), recursive = TRUE), parent_of(rel))
  }
  temp <- temp_path(real, transfer)
  if (file.exists(temp)) os_refuse("EEXIST", rel, "an upload with this id is under way")
  attempt(file.create(temp), rel)
  list(temp = temp)
}

write_chunk <- function(temp, offset, data) {
  check_temp(temp)
  bytes <- base64enc::base64decode(data)
  con <- attempt(file(temp, "r+b"), basename(temp))
  on.exit(close(con))
  seek(con, offset, rw = "write")
  writeBin(bytes, con)
  flush(con)
  if (file.size(temp) < offset + length(bytes)) os_refuse("ENOSPC", basename(temp))
  list(written = offset + length(bytes))
}

commit_upload <- function(temp, rel) {
  check_temp(temp)
  real <- resolve(rel)
  if (dir.exists(real)) {
    file.remove(temp)
    refuse("became_directory", rel)
  }
  created <- !file.exists(real)
  attempt(file.rename(temp, real), rel)
  c(model(rel, real, stat(real, rel)), list(created = created))
}

abort_upload <- function(rel, transfer) {
  temp <- temp_path(resolve(rel), transfer)
  if (file.exists(temp)) file.remove(temp)
  structure(list(), names = character())
}

delete <- function(rel) {
  if (!nzchar(rel)) refuse("root")
  target <- file.path(resolve(parent_of(rel)), basename(rel))
  if (!nzchar(Sys.readlink(target)) && !file.exists(target)) os_refuse("ENOENT", rel)
  attempt(file.remove(target), rel)
  structure(list(), names = character())
}

CALLS <- list(describe = describe, read = read_chunk, begin_upload = begin_upload,
              write_chunk = write_chunk, commit_upload = commit_upload,
              abort_upload = abort_upload, delete = delete)

answer <- function(call, data) {
  doc <- tryCatch({
    text <- rawToChar(base64enc::base64decode(call))
    Encoding(text) <- "UTF-8"
    request <- jsonlite::fromJSON(text, simplifyVector = FALSE)
    args <- request$args
    if (request[["function"]] == "write_chunk") args <- c(args, list(data))
    do.call(CALLS[[request[["function"]]]], args)
  }, kb_refusal = function(e) list(error = e$error),
  error = function(e) list(error = list(reason = "internal", detail = conditionMessage(e))))
  json <- jsonlite::toJSON(doc, auto_unbox = TRUE, null = "null", na = "null", digits = NA)
  IRdisplay::publish_mimebundle(setNames(list(as.character(json)), MIME))
  invisible(NULL)
}
