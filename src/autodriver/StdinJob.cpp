#include "autodriver/StdinJob.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string_view>

#include "autodriver/Frames.hpp"
#include "autodriver/OsError.hpp"
#include "autodriver/UniqueFd.hpp"

namespace tango::autodriver {
namespace {

constexpr std::size_t kMaxArgs = 64 * 1024;
constexpr std::string_view kJobPrefix = "job/";

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

// libarchive's words for the last error (it may have none).
std::string error_of(archive* a) {
  const char* e = archive_error_string(a);
  return e ? e : "unknown error";
}

// One path component a job file may be called: no "/", not "." or "..".
bool plain_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= 255 &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

// Whether the open directory `fd` is ours and holds nothing.
bool empty_own_dir(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_uid != ::geteuid()) return false;
  const int dup = ::dup(fd);
  if (dup < 0) return false;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(dup), ::closedir);
  if (!d) {
    ::close(dup);
    return false;
  }
  while (const dirent* e = ::readdir(d.get())) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") return false;
  }
  return true;
}

}  // namespace

std::variant<std::vector<std::string>, StdinJobError> read_stdin_job(int fd,
                                                                     const std::string& dir) {
  std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
  if (!a) throw_errno("archive_read_new", ENOMEM);
  archive_read_support_format_tar(a.get());
  if (archive_read_open_fd(a.get(), fd, 64 * 1024) != ARCHIVE_OK)
    return StdinJobError{std::string("cannot read the job from stdin: ") + error_of(a.get())};
  // A sandbox may hand us its job directory already made (the local VMMS's
  // warm sandbox: a tmpfs): then it must be an empty directory of ours.
  const bool made = ::mkdir(dir.c_str(), 0700) == 0;
  if (!made && errno != EEXIST) throw_errno("mkdir " + dir);
  UniqueFd dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dirfd.valid()) throw_errno("open " + dir);
  if (!made && !empty_own_dir(dirfd.get()))
    return StdinJobError{dir + " exists and is not an empty directory of ours"};

  std::vector<std::string> args;
  bool saw_args = false;
  archive_entry* entry = nullptr;
  char buf[64 * 1024];
  for (;;) {
    const int rc = archive_read_next_header(a.get(), &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK) return StdinJobError{std::string("bad job stream: ") + error_of(a.get())};
    const char* raw = archive_entry_pathname(entry);
    const std::string_view path = raw ? raw : "";
    const auto type = archive_entry_filetype(entry);
    if ((path == "job/" || path == "job") && type == AE_IFDIR) continue;
    if (path == "args" && type == AE_IFREG && !saw_args) {
      saw_args = true;
      std::string text;
      for (;;) {
        const la_ssize_t n = archive_read_data(a.get(), buf, sizeof buf);
        if (n < 0) return StdinJobError{std::string("bad job stream: ") + error_of(a.get())};
        if (n == 0) break;
        if (text.size() + static_cast<std::size_t>(n) > kMaxArgs)
          return StdinJobError{"the job's flags are longer than 64 KiB"};
        text.append(buf, static_cast<std::size_t>(n));
      }
      if (!text.empty() && text.back() != '\0')
        return StdinJobError{"the job's flags do not end with a NUL byte"};
      for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t end = text.find('\0', pos);
        args.emplace_back(text.substr(pos, end - pos));
        pos = end + 1;
      }
      continue;
    }
    const std::string_view name =
        path.starts_with(kJobPrefix) ? path.substr(kJobPrefix.size()) : std::string_view();
    if (type != AE_IFREG || !plain_name(name))
      return StdinJobError{"unexpected entry in the job stream: '" + std::string(path) + "'"};
    const mode_t mode = archive_entry_perm(entry) & 0755;
    // O_EXCL: a name twice in the stream is refused rather than merged.
    UniqueFd out(::openat(dirfd.get(), std::string(name).c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!out.valid()) throw_errno("create " + dir + "/" + std::string(name));
    for (;;) {
      const la_ssize_t n = archive_read_data(a.get(), buf, sizeof buf);
      if (n < 0) return StdinJobError{std::string("bad job stream: ") + error_of(a.get())};
      if (n == 0) break;
      if (!write_all(out.get(), std::string_view(buf, static_cast<std::size_t>(n))))
        throw_errno("write " + dir + "/" + std::string(name));
    }
    if (::fchmod(out.get(), mode) != 0) throw_errno("chmod " + dir + "/" + std::string(name));
  }
  // Every job stream holds its flags (even none): a stream without them is
  // no job (the service went away before handing one over).
  if (!saw_args) return StdinJobError{"no job arrived on stdin"};
  return args;
}

}  // namespace tango::autodriver
