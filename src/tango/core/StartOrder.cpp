#include "tango/core/StartOrder.hpp"

#include <deque>
#include <utility>

#include "tango/util/KeyId.hpp"

namespace tango {

SharePolicy SharePolicy::fromConfig(const Config& cfg) {
  SharePolicy p;
  p.maxPriority = parsePriority(cfg.maxPriority).value_or(JobPriority::Normal);
  for (const auto& k : cfg.keyPolicies) {
    const std::string id = keyId(k.key);
    p.keyWeight[id] = k.weight;
    if (!k.maxPriority.empty())
      p.keyMaxPriority[id] = parsePriority(k.maxPriority).value_or(p.maxPriority);
  }
  p.courselabWeight = cfg.courselabWeights;
  return p;
}

double SharePolicy::weightOfKey(const std::string& keyId) const {
  auto it = keyWeight.find(keyId);
  return it == keyWeight.end() ? 1.0 : it->second;
}

double SharePolicy::weightOfCourselab(const std::string& courselab) const {
  auto it = courselabWeight.find(courselab);
  return it == courselabWeight.end() ? 1.0 : it->second;
}

JobPriority SharePolicy::maxPriorityOf(const std::string& keyId) const {
  auto it = keyMaxPriority.find(keyId);
  return it == keyMaxPriority.end() ? maxPriority : it->second;
}

namespace {

// One key's queued jobs of one priority, per courselab, oldest first.
struct KeyQueue {
  std::map<std::string, std::deque<std::size_t>> labs;
  std::size_t left = 0;
};

// The share used so far for a weight: lower goes first.
double share(std::size_t load, double weight) { return static_cast<double>(load) / weight; }

}  // namespace

std::vector<std::size_t> startOrder(const std::vector<const TangoJob*>& queued,
                                    const std::vector<const TangoJob*>& running,
                                    const SharePolicy& policy) {
  // Loads: VMs held now, plus those this order hands out as it goes.
  std::map<std::string, std::size_t> keyLoad;
  std::map<std::pair<std::string, std::string>, std::size_t> labLoad;
  for (const TangoJob* j : running) {
    ++keyLoad[j->keyId];
    ++labLoad[{j->keyId, j->courselab}];
  }
  // Priority (highest first) -> key -> courselab -> FIFO of indices.
  std::map<int, std::map<std::string, KeyQueue>, std::greater<>> levels;
  for (std::size_t i = 0; i < queued.size(); ++i) {
    auto& kq = levels[static_cast<int>(queued[i]->priority)][queued[i]->keyId];
    kq.labs[queued[i]->courselab].push_back(i);
    ++kq.left;
  }

  std::vector<std::size_t> order;
  order.reserve(queued.size());
  for (auto& [priority, keys] : levels) {
    (void)priority;
    for (;;) {
      // The key furthest below its share; on a tie, the one whose oldest
      // job is oldest.
      const std::string* bestKey = nullptr;
      KeyQueue* best = nullptr;
      double bestShare = 0;
      std::size_t bestHead = 0;
      for (auto& [key, kq] : keys) {
        if (kq.left == 0) continue;
        std::size_t head = queued.size();
        for (const auto& [lab, q] : kq.labs)
          if (!q.empty()) head = std::min(head, q.front());
        const double s = share(keyLoad[key], policy.weightOfKey(key));
        if (!best || s < bestShare || (s == bestShare && head < bestHead)) {
          bestKey = &key;
          best = &kq;
          bestShare = s;
          bestHead = head;
        }
      }
      if (!best) break;
      // Within it, the courselab furthest below its share, likewise.
      std::deque<std::size_t>* bestLab = nullptr;
      const std::string* bestLabName = nullptr;
      double labShare = 0;
      for (auto& [lab, q] : best->labs) {
        if (q.empty()) continue;
        const double s = share(labLoad[{*bestKey, lab}], policy.weightOfCourselab(lab));
        if (!bestLab || s < labShare || (s == labShare && q.front() < bestLab->front())) {
          bestLab = &q;
          bestLabName = &lab;
          labShare = s;
        }
      }
      order.push_back(bestLab->front());
      bestLab->pop_front();
      --best->left;
      ++keyLoad[*bestKey];
      ++labLoad[{*bestKey, *bestLabName}];
    }
  }
  return order;
}

}  // namespace tango
