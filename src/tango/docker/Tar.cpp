#include "tango/docker/Tar.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <stdexcept>

namespace tango::docker {

namespace {

struct WriterFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct ReaderFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

la_ssize_t appendToString(archive*, void* user, const void* buf, size_t n) {
  static_cast<std::string*>(user)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

}  // namespace

std::string makeTar(const std::vector<TarEntry>& entries) {
  std::string out;
  std::unique_ptr<archive, WriterFree> a(archive_write_new());
  if (!a) throw std::runtime_error("archive_write_new failed");
  archive_write_set_format_pax_restricted(a.get());
  // Default blocking pads to 10 KiB; the engine does not need it.
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open(a.get(), &out, nullptr, appendToString, nullptr) != ARCHIVE_OK)
    throw std::runtime_error(std::string("tar: ") + archive_error_string(a.get()));
  for (const auto& e : entries) {
    std::unique_ptr<archive_entry, EntryFree> entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), e.path.c_str());
    const bool dir = e.kind == TarEntry::Kind::Dir;
    archive_entry_set_filetype(entry.get(), dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(entry.get(), e.mode);
    archive_entry_set_uid(entry.get(), e.uid);
    archive_entry_set_gid(entry.get(), e.gid);
    archive_entry_set_size(entry.get(), dir ? 0 : static_cast<la_int64_t>(e.data.size()));
    archive_entry_set_mtime(entry.get(), 0, 0);
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK)
      throw std::runtime_error(std::string("tar: ") + archive_error_string(a.get()));
    if (!dir && !e.data.empty() &&
        archive_write_data(a.get(), e.data.data(), e.data.size()) !=
            static_cast<la_ssize_t>(e.data.size()))
      throw std::runtime_error(std::string("tar: ") + archive_error_string(a.get()));
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK)
    throw std::runtime_error(std::string("tar: ") + archive_error_string(a.get()));
  return out;
}

std::optional<std::string> firstFileOfTar(std::string_view tar, std::size_t maxBytes) {
  std::unique_ptr<archive, ReaderFree> a(archive_read_new());
  if (!a) return std::nullopt;
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK) return std::nullopt;
  archive_entry* entry = nullptr;
  if (archive_read_next_header(a.get(), &entry) != ARCHIVE_OK) return std::nullopt;
  if (archive_entry_filetype(entry) != AE_IFREG) return std::nullopt;
  std::string out;
  char buf[16384];
  while (out.size() < maxBytes) {
    const la_ssize_t n = archive_read_data(a.get(), buf, sizeof buf);
    if (n <= 0) break;  // end, or a cut-off stream: keep what we have
    out.append(buf, std::min(static_cast<std::size_t>(n), maxBytes - out.size()));
  }
  return out;
}

void tarDirectory(const std::filesystem::path& dir, const std::filesystem::path& dest) {
  std::unique_ptr<archive, WriterFree> out(archive_write_new());
  std::unique_ptr<archive, ReaderFree> disk(archive_read_disk_new());
  if (!out || !disk) throw std::runtime_error("libarchive: out of memory");
  archive_write_set_format_pax_restricted(out.get());
  if (archive_write_open_filename(out.get(), dest.c_str()) != ARCHIVE_OK)
    throw std::runtime_error(std::string("tar: ") + archive_error_string(out.get()));
  // Store symlinks as links (never follow them out of the root), and keep
  // numeric owners: the names are the image's, not this host's.
  archive_read_disk_set_symlink_physical(disk.get());
  archive_read_disk_set_standard_lookup(disk.get());
  if (archive_read_disk_open(disk.get(), dir.c_str()) != ARCHIVE_OK)
    throw std::runtime_error(std::string("tar: ") + archive_error_string(disk.get()));
  const std::string root = dir.string();
  for (;;) {
    std::unique_ptr<archive_entry, EntryFree> entry(archive_entry_new());
    const int r = archive_read_next_header2(disk.get(), entry.get());
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
      throw std::runtime_error(std::string("tar: ") + archive_error_string(disk.get()));
    archive_read_disk_descend(disk.get());
    std::string path = archive_entry_pathname(entry.get());
    if (path.rfind(root, 0) == 0) path = path.substr(root.size());
    while (!path.empty() && path.front() == '/') path.erase(0, 1);
    if (path.empty()) continue;  // the root itself
    archive_entry_set_pathname(entry.get(), path.c_str());
    archive_entry_set_uname(entry.get(), nullptr);
    archive_entry_set_gname(entry.get(), nullptr);
    if (archive_write_header(out.get(), entry.get()) != ARCHIVE_OK)
      throw std::runtime_error(std::string("tar ") + path + ": " + archive_error_string(out.get()));
    if (archive_entry_filetype(entry.get()) != AE_IFREG || archive_entry_size(entry.get()) == 0)
      continue;
    char buf[65536];
    for (;;) {
      const la_ssize_t n = archive_read_data(disk.get(), buf, sizeof buf);
      if (n < 0)
        throw std::runtime_error(std::string("tar ") + path + ": " +
                                 archive_error_string(disk.get()));
      if (n == 0) break;
      if (archive_write_data(out.get(), buf, static_cast<size_t>(n)) != n)
        throw std::runtime_error(std::string("tar ") + path + ": " +
                                 archive_error_string(out.get()));
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK)
    throw std::runtime_error(std::string("tar: ") + archive_error_string(out.get()));
}

}  // namespace tango::docker
