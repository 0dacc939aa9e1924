#pragma once
// The courselab filesystem: COURSELABS/<key>-<courselab>/ holding the files a
// client uploaded, and its output folder holding finished jobs' output.
// Every name that reaches this class has passed isSafeName; on top of that
// nothing here follows a symlink inside a courselab (O_NOFOLLOW), so no
// request can read or write outside COURSELABS.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "tango/config/Config.hpp"
#include "tango/courselab/DiskGuard.hpp"
#include "tango/courselab/Md5Cache.hpp"
#include "tango/courselab/TempFile.hpp"
#include "tango/util/Fd.hpp"
#include "tango/util/Md5.hpp"

namespace tango {

class Courselabs {
 public:
  explicit Courselabs(const Config& cfg);

  // COURSELABS/<key>-<courselab>, nullopt when either name is unsafe.
  std::optional<std::filesystem::path> dirFor(std::string_view key,
                                              std::string_view courselab) const;
  // True when `dir` is a real directory (a symlink does not count).
  bool exists(const std::filesystem::path& dir) const;
  // A safe name that is not ours: not the output folder, not a temp file.
  bool isUploadableName(std::string_view name) const;

  struct OpenResult {
    bool ok = false;
    bool created = false;
    std::map<std::string, std::string> files;  // name -> MD5 hex
    std::string error;
  };
  // Creates the directory (0700) and its output folder if missing.
  OpenResult open(const std::filesystem::path& dir);

  // A file being uploaded: a hidden temp file in the courselab directory,
  // hashed while it is written. Dropping it removes the temp file.
  class Upload {
   public:
    bool write(std::string_view data);
    std::uint64_t size() const { return temp_.size(); }

   private:
    friend class Courselabs;
    Upload(courselab::TempFile temp, std::filesystem::path dir, std::string name)
        : temp_(std::move(temp)), dir_(std::move(dir)), name_(std::move(name)) {}
    courselab::TempFile temp_;
    Md5 md5_;
    std::filesystem::path dir_;
    std::string name_;
  };
  std::optional<Upload> beginUpload(const std::filesystem::path& dir, const std::string& name,
                                    std::string& error);

  enum class CommitResult { Uploaded, Exists, Failed };
  // Renames the temp file over the target atomically, unless the target
  // already has identical content (then the temp file is dropped).
  CommitResult commit(Upload upload, std::string& error);

  // output/<name> opened for reading when it is a regular file (no
  // symlink followed anywhere on the way); an empty Fd otherwise. A poll
  // streams it from there, so a big output never sits in memory whole.
  Fd openOutput(const std::filesystem::path& dir, std::string_view name) const;

  // Why `key` may not store `incoming` more bytes now (DiskGuard.hpp);
  // lowers `limit` to what it may still store.
  std::optional<std::string> diskRefusal(std::string_view key, std::uint64_t incoming,
                                         std::uint64_t& limit) {
    return disk_.refusal(key, incoming, limit);
  }

  static constexpr std::string_view kTempPrefix = ".upload-";

 private:
  std::map<std::string, std::string> hashFiles(int dirFd, const std::filesystem::path& dir);
  std::optional<std::string> md5Of(int dirFd, const std::filesystem::path& dir,
                                   const std::string& name, const struct stat& st);

  std::filesystem::path root_;
  std::string outputFolder_;
  courselab::Md5Cache cache_;
  courselab::DiskGuard disk_;
};

}  // namespace tango
