#pragma once
// An address range in CIDR notation ("169.254.0.0/16", "fe80::/10"), and
// the check a connection's peer address goes through (callback policy).
// IPv4-mapped IPv6 peers (::ffff:a.b.c.d) are matched as the IPv4 address
// they carry, so a range written in IPv4 also covers them.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sockaddr;

namespace tango {

struct AddressRange {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4
  int prefix = 0;                        // bits

  // nullopt unless `text` is "ADDRESS/BITS" or a bare address (a /32 or /128).
  static std::optional<AddressRange> parse(std::string_view text);
  bool contains(bool v6Addr, const std::uint8_t* addr) const;
  std::string str() const;
};

// A peer address as a range check sees it; nullopt for a non-IP family.
struct PeerAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};
  static std::optional<PeerAddress> of(const struct sockaddr* sa);
  static std::optional<PeerAddress> parse(std::string_view text);
  std::string str() const;
};

// Deny wins; an empty allow list allows every address not denied.
class AddressPolicy {
 public:
  AddressPolicy() = default;
  // Throws std::invalid_argument naming the first entry that is not a range.
  AddressPolicy(const std::vector<std::string>& allow, const std::vector<std::string>& deny);
  bool allows(const PeerAddress& a) const;

 private:
  std::vector<AddressRange> allow_, deny_;
};

}  // namespace tango
