#include "tango/util/AddressRange.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>
#include <stdexcept>

namespace tango {

namespace {

bool matches(const std::uint8_t* a, const std::uint8_t* b, int bits) {
  int whole = bits / 8;
  if (std::memcmp(a, b, static_cast<std::size_t>(whole)) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

bool isV4Mapped(const std::uint8_t* b) {
  static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(b, kPrefix, 12) == 0;
}

}  // namespace

std::optional<PeerAddress> PeerAddress::parse(std::string_view text) {
  std::string s(text);
  PeerAddress p;
  if (::inet_pton(AF_INET, s.c_str(), p.bytes.data()) == 1) return p;
  if (::inet_pton(AF_INET6, s.c_str(), p.bytes.data()) == 1) {
    p.v6 = true;
    return p;
  }
  return std::nullopt;
}

std::optional<PeerAddress> PeerAddress::of(const struct sockaddr* sa) {
  if (!sa) return std::nullopt;
  PeerAddress p;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(p.bytes.data(), &in->sin_addr, 4);
    return p;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    p.v6 = true;
    std::memcpy(p.bytes.data(), &in6->sin6_addr, 16);
    return p;
  }
  return std::nullopt;
}

std::string PeerAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

std::optional<AddressRange> AddressRange::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = PeerAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  AddressRange r;
  r.v6 = addr->v6;
  r.bytes = addr->bytes;
  const int max = r.v6 ? 128 : 32;
  r.prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view bits = text.substr(slash + 1);
    int n = -1;
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), n);
    if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() || n < 0 || n > max)
      return std::nullopt;
    r.prefix = n;
  }
  return r;
}

bool AddressRange::contains(bool v6Addr, const std::uint8_t* addr) const {
  if (v6 == v6Addr) return matches(bytes.data(), addr, prefix);
  // An IPv4 range also covers the IPv4-mapped IPv6 form of its addresses.
  if (!v6 && v6Addr && isV4Mapped(addr)) return matches(bytes.data(), addr + 12, prefix);
  return false;
}

std::string AddressRange::str() const {
  PeerAddress p{v6, bytes};
  return p.str() + "/" + std::to_string(prefix);
}

AddressPolicy::AddressPolicy(const std::vector<std::string>& allow,
                             const std::vector<std::string>& deny) {
  auto load = [](const std::vector<std::string>& from, std::vector<AddressRange>& to) {
    for (const auto& text : from) {
      auto r = AddressRange::parse(text);
      if (!r) throw std::invalid_argument("\"" + text + "\" is not an address range (a.b.c.d/n)");
      to.push_back(*r);
    }
  };
  load(allow, allow_);
  load(deny, deny_);
}

bool AddressPolicy::allows(const PeerAddress& a) const {
  for (const auto& r : deny_)
    if (r.contains(a.v6, a.bytes.data())) return false;
  if (allow_.empty()) return true;
  for (const auto& r : allow_)
    if (r.contains(a.v6, a.bytes.data())) return true;
  return false;
}

}  // namespace tango
