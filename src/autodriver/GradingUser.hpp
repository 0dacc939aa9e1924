#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace tango::autodriver {

// The unprivileged account a job runs as when the autodriver starts as root.
struct GradingUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

// Finds an entry in passwd(5)-format text by user name or, failing that, by
// numeric uid. We parse the file ourselves because the autodriver is static
// and glibc's getpwnam would need NSS modules loaded at run time.
std::optional<GradingUser> find_in_passwd(std::string_view passwd_text,
                                          std::string_view name_or_uid);

// Reads /etc/passwd; throws std::system_error if it cannot be read.
std::optional<GradingUser> lookup_grading_user(std::string_view name_or_uid);

// Moves `dir` into the user's home (replacing a leftover directory of the
// same name from an earlier job), hands it to the user and returns its new
// path. Throws std::system_error on failure.
std::string install_job_dir(const GradingUser& user, const std::string& dir);

// Irrevocably becomes `uid`/`gid` with no supplementary groups, and checks
// that root cannot be regained. Called in the forked child, so it does not
// allocate; returns nullptr on success or the name of the failed step (errno
// is set).
const char* drop_privileges(uid_t uid, gid_t gid);

}  // namespace tango::autodriver
