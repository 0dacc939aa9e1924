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
  // The VMMS a TangoMachine names; the default for a machine naming none.
  Vmms& of(const TangoMachine& vm) const {
    Vmms* v = vm.vmms.empty() ? nullptr : find(vm.vmms);
    return v ? *v : *list_.front();
  }
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
