#pragma once
// The VMMSs one node serves, by name (Tango: self.vmms[job.vm.vmms]). The
// first is VMMS_NAME, the default; MORE_VMMS follow.
#include <memory>
#include <string>
#include <vector>

#include "tango/vmms/Vmms.hpp"

namespace tango {

class VmmsSet {
 public:
  VmmsSet() = default;
  VmmsSet(VmmsSet&&) = default;
  VmmsSet& operator=(VmmsSet&&) = default;

  void add(std::unique_ptr<Vmms> vmms) { list_.push_back(std::move(vmms)); }
  Vmms* find(const std::string& name) const {
    for (const auto& v : list_)
      if (v->name() == name) return v.get();
    return nullptr;
  }
  // The VMMS of that name; the default for "" (or a name not served: the
  // manager never takes a job of one, see JobManager's accept).
  Vmms& named(const std::string& name) const {
    Vmms* v = name.empty() ? nullptr : find(name);
    return v ? *v : *list_.front();
  }
  // The VMMS a TangoMachine names.
  Vmms& of(const TangoMachine& vm) const { return named(vm.vmms); }
  Vmms& byDefault() const { return *list_.front(); }
  std::vector<Vmms*> all() const {
    std::vector<Vmms*> out;
    for (const auto& v : list_) out.push_back(v.get());
    return out;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& v : list_) out.push_back(v->name());
    return out;
  }
  bool empty() const { return list_.empty(); }

 private:
  std::vector<std::unique_ptr<Vmms>> list_;
};

}  // namespace tango
