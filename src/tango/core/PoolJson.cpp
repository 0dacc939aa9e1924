#include "tango/core/PoolJson.hpp"

namespace tango {

namespace json = boost::json;

namespace {
void ids(const json::value* a, std::vector<std::int64_t>& to) {
  if (a && a->is_array())
    for (const auto& x : a->get_array())
      if (x.is_int64()) to.push_back(x.get_int64());
}
}  // namespace

json::object poolStateJson(const PoolState& p) {
  json::object o{{"total", json::array(p.total.begin(), p.total.end())},
                 {"free", json::array(p.free.begin(), p.free.end())}};
  if (!p.hosts.empty()) {
    json::object hosts;
    for (const auto& [id, host] : p.hosts) {
      auto& list = hosts[host];
      if (!list.is_array()) list = json::array();
      list.get_array().push_back(id);
    }
    o["hosts"] = std::move(hosts);
  }
  return o;
}

PoolState poolStateFrom(const json::value& v) {
  PoolState s;
  if (!v.is_object()) return s;
  const auto& o = v.get_object();
  ids(o.if_contains("total"), s.total);
  ids(o.if_contains("free"), s.free);
  if (auto* h = o.if_contains("hosts"); h && h->is_object())
    for (const auto& [host, list] : h->get_object()) {
      std::vector<std::int64_t> on;
      ids(&list, on);
      for (auto id : on) s.hosts[id] = std::string(host);
    }
  return s;
}

}  // namespace tango
