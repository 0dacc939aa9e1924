#include "tango/metrics/ServiceMetrics.hpp"

#include "tango/metrics/Exposition.hpp"

namespace tango::metrics {

namespace {

void counter(Exposition& e, std::string_view name, std::string_view help, std::int64_t v) {
  e.family(name, help, "counter");
  e.sample(name, {}, static_cast<double>(v));
}

void gauge(Exposition& e, std::string_view name, std::string_view help, double v) {
  e.family(name, help, "gauge");
  e.sample(name, {}, v);
}

}  // namespace

std::string renderServiceMetrics(const ServiceSnapshot& s) {
  using namespace std::chrono;
  const Stats& st = s.stats;
  const JobMetrics& m = st.metrics;
  Exposition e;
  counter(e, "tango_jobs_received_total",
          "Job submissions received (addJob calls, accepted or not).", st.jobRequests.load());

  e.family("tango_jobs_finished_total", "Jobs finished, by outcome.", "counter");
  for (std::size_t i = 0; i < JobMetrics::kOutcomes.size(); ++i) {
    e.sample("tango_jobs_finished_total", {{"outcome", std::string(JobMetrics::kOutcomes[i])}},
             static_cast<double>(m.outcomes(i)));
  }
  counter(e, "tango_job_retries_total", "Retries of a job on a fresh VM after a system failure.",
          st.jobRetries.load());
  gauge(e, "tango_queue_length", "Jobs waiting for a VM.", static_cast<double>(s.queued));
  gauge(e, "tango_running_jobs", "Jobs running now.", static_cast<double>(s.running));

  // Per courselab, only those with live jobs now: a name a client chose
  // adds series only while its jobs live (at most MAX_LIVE_JOBS_PER_KEY).
  e.family("tango_courselab_jobs", "Live jobs of a courselab (state queued or running).", "gauge");
  for (const auto& [lab, l] : s.courselabs) {
    e.sample("tango_courselab_jobs", {{"courselab", lab}, {"state", "queued"}},
             static_cast<double>(l.queued));
    e.sample("tango_courselab_jobs", {{"courselab", lab}, {"state", "running"}},
             static_cast<double>(l.running));
  }
  e.family("tango_courselab_oldest_wait_seconds",
           "How long the oldest queued job of a courselab has waited.", "gauge");
  for (const auto& [lab, l] : s.courselabs)
    e.sample("tango_courselab_oldest_wait_seconds", {{"courselab", lab}}, l.oldestWaitSecs);
  e.family("tango_job_queue_wait_seconds", "Time from submission to a VM, per job start.",
           "histogram");
  e.histogram("tango_job_queue_wait_seconds", {}, m.queueWait());

  e.family("tango_pool_vms", "VMs in the pool of an image (state total or free).", "gauge");
  for (const auto& [image, p] : s.pools) {
    e.sample("tango_pool_vms", {{"image", image}, {"state", "total"}},
             static_cast<double>(p.total));
    e.sample("tango_pool_vms", {{"image", image}, {"state", "free"}}, static_cast<double>(p.free));
  }

  e.family("tango_vmms_step_duration_seconds", "Duration of each VMMS call of a job.", "histogram");
  for (std::size_t i = 0; i < JobMetrics::kSteps.size(); ++i) {
    e.histogram("tango_vmms_step_duration_seconds", {{"step", std::string(JobMetrics::kSteps[i])}},
                m.step(i));
  }
  e.family("tango_job_latency_seconds", "Time from submission to finished output, per job.",
           "histogram");
  e.histogram("tango_job_latency_seconds", {}, m.latency());

  e.family("tango_vmms_errors_total", "Failed VMMS calls, by call.", "counter");
  for (std::size_t i = 0; i < JobMetrics::kSteps.size(); ++i) {
    e.sample("tango_vmms_errors_total", {{"call", std::string(JobMetrics::kSteps[i])}},
             static_cast<double>(m.errors(i)));
  }
  counter(e, "tango_callbacks_delivered_total", "Callbacks delivered to a job's notifyURL.",
          st.callbacksDelivered.load());
  counter(e, "tango_callbacks_failed_total", "Callbacks given up after every retry.",
          st.callbacksFailed.load());
  gauge(e, "tango_uptime_seconds", "Seconds since the service started.",
        duration<double>(steady_clock::now() - st.started).count());
  return e.text();
}

}  // namespace tango::metrics
