#include "tango/courselab/Courselabs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include "tango/util/Durable.hpp"
#include "tango/util/Fd.hpp"
#include "tango/util/SafeName.hpp"

namespace tango {

namespace {

// Temp files older than this are leftovers of a crash; no upload takes a day.
constexpr std::time_t kStaleTempSecs = 24 * 3600;

Fd openDirNoFollow(int atFd, const char* path) {
  return Fd(::openat(atFd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

struct DirCloser {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};

}  // namespace

Courselabs::Courselabs(const Config& cfg)
    : root_(cfg.courselabsDir()), outputFolder_(cfg.outputFolder), disk_(cfg) {}

std::optional<std::filesystem::path> Courselabs::dirFor(std::string_view key,
                                                        std::string_view courselab) const {
  return courselabDir(root_, key, courselab);
}

bool Courselabs::exists(const std::filesystem::path& dir) const {
  struct stat st {};
  return ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Courselabs::isUploadableName(std::string_view name) const {
  return isSafeName(name) && name != outputFolder_ && !name.starts_with(kTempPrefix);
}

Courselabs::OpenResult Courselabs::open(const std::filesystem::path& dir) {
  OpenResult r;
  std::error_code ec;
  std::filesystem::create_directories(root_, ec);
  if (::mkdir(dir.c_str(), 0700) == 0) {
    r.created = true;
  } else if (errno != EEXIST) {
    r.error = std::string("Cannot create courselab directory: ") + std::strerror(errno);
    return r;
  }
  Fd d = openDirNoFollow(AT_FDCWD, dir.c_str());
  if (!d) {
    r.error = "Cannot open courselab directory";
    return r;
  }
  if (::mkdirat(d.get(), outputFolder_.c_str(), 0700) != 0 && errno != EEXIST) {
    r.error = std::string("Cannot create output folder: ") + std::strerror(errno);
    return r;
  }
  r.files = hashFiles(d.get(), dir);
  r.ok = true;
  return r;
}

std::map<std::string, std::string> Courselabs::hashFiles(int dirFd,
                                                         const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  // fdopendir takes ownership of its descriptor, so give it a duplicate.
  int dupFd = ::fcntl(dirFd, F_DUPFD_CLOEXEC, 0);
  if (dupFd < 0) return files;
  std::unique_ptr<DIR, DirCloser> dp(::fdopendir(dupFd));
  if (!dp) {
    ::close(dupFd);
    return files;
  }
  std::time_t now = std::time(nullptr);
  while (dirent* e = ::readdir(dp.get())) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == outputFolder_) continue;
    struct stat st {};
    if (::fstatat(dirFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (name.starts_with(kTempPrefix)) {
      if (S_ISREG(st.st_mode) && now - st.st_mtim.tv_sec > kStaleTempSecs) {
        ::unlinkat(dirFd, name.c_str(), 0);
      }
      continue;
    }
    if (!S_ISREG(st.st_mode)) continue;
    if (auto md5 = md5Of(dirFd, dir, name, st)) files.emplace(name, std::move(*md5));
  }
  return files;
}

std::optional<std::string> Courselabs::md5Of(int dirFd, const std::filesystem::path& dir,
                                             const std::string& name, const struct stat& st) {
  std::string full = (dir / name).string();
  if (auto cached = cache_.lookup(full, st)) return cached;
  // O_NONBLOCK: a FIFO swapped in after the fstatat must not hang us.
  Fd f(::openat(dirFd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!f) return std::nullopt;
  struct stat fst {};
  if (::fstat(f.get(), &fst) != 0 || !S_ISREG(fst.st_mode)) return std::nullopt;
  auto md5 = md5OfFd(f.get());
  if (md5) cache_.store(full, fst, *md5);
  return md5;
}

bool Courselabs::Upload::write(std::string_view data) {
  md5_.update(data);
  return temp_.write(data);
}

std::optional<Courselabs::Upload> Courselabs::beginUpload(const std::filesystem::path& dir,
                                                          const std::string& name,
                                                          std::string& error) {
  auto temp = courselab::TempFile::create(dir, kTempPrefix, error);
  if (!temp) return std::nullopt;
  return Upload(std::move(*temp), dir, name);
}

Courselabs::CommitResult Courselabs::commit(Upload upload, std::string& error) {
  std::string md5 = upload.md5_.hexDigest();
  Fd d = openDirNoFollow(AT_FDCWD, upload.dir_.c_str());
  if (!d) {
    error = "Courselab not found";
    return CommitResult::Failed;
  }
  struct stat tst {};
  if (::fchmod(upload.temp_.fd(), 0600) != 0 || ::fstat(upload.temp_.fd(), &tst) != 0) {
    error = std::string("Cannot store file: ") + std::strerror(errno);
    return CommitResult::Failed;
  }
  struct stat st {};
  if (::fstatat(d.get(), upload.name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISREG(st.st_mode) && st.st_size == tst.st_size) {
    auto existing = md5Of(d.get(), upload.dir_, upload.name_, st);
    if (existing && *existing == md5) return CommitResult::Exists;  // temp dropped with `upload`
  }
  // Durable before "Uploaded file" is answered: the file's data, then (after
  // the rename) the directory entry.
  if (auto err = syncFd(upload.temp_.fd(), "Cannot store file"); !err.empty()) {
    error = err;
    return CommitResult::Failed;
  }
  // renameat relative to the directory we opened without following links.
  std::string tempName = upload.temp_.path().filename().string();
  if (::renameat(d.get(), tempName.c_str(), d.get(), upload.name_.c_str()) != 0) {
    error = std::string("Cannot store file: ") + std::strerror(errno);
    return CommitResult::Failed;
  }
  upload.temp_.release();
  cache_.store((upload.dir_ / upload.name_).string(), tst, md5);
  if (auto err = syncFd(d.get(), "Cannot store file"); !err.empty()) {
    error = err;
    return CommitResult::Failed;
  }
  return CommitResult::Uploaded;
}

Fd Courselabs::openOutput(const std::filesystem::path& dir, std::string_view name) const {
  if (!isSafeName(name)) return {};
  Fd d = openDirNoFollow(AT_FDCWD, dir.c_str());
  if (!d) return {};
  Fd out = openDirNoFollow(d.get(), outputFolder_.c_str());
  if (!out) return {};
  std::string n(name);
  Fd f(::openat(out.get(), n.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!f) return {};
  struct stat st {};
  if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  return f;
}

}  // namespace tango
