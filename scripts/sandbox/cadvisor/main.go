// The sandbox's cAdvisor: the real cAdvisor library (github.com/google/cadvisor, the catalog's pin v0.49.1: its
// container manager, Docker plugin and Prometheus collector) behind a minimal main, because the Go module proxy
// here does not serve upstream's main (the separate module github.com/google/cadvisor/cmd). It takes the flags
// the catalog passes (catalog/agents.ts): --docker, --docker_only and --housekeeping_interval are the library's
// own; --enable_metrics and --port are upstream main's, with its defaults. It serves /metrics and /healthz on
// --port, as upstream does; the rest of upstream's main (its web UI, REST API, storage drivers) is left out.
// Built by scripts/mesh-tools.sh; the metric names and labels are the library's, so the sandbox's Prometheus
// gets the numbers a real site's gets (of the stand-ins' processes).
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/google/cadvisor/cache/memory"
	"github.com/google/cadvisor/container"
	_ "github.com/google/cadvisor/container/docker/install"
	v2 "github.com/google/cadvisor/info/v2"
	"github.com/google/cadvisor/manager"
	"github.com/google/cadvisor/metrics"
	"github.com/google/cadvisor/utils/sysfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

func main() {
	port := flag.Int("port", 8080, "port to listen on")
	// Upstream's default set is larger; the catalog always names its own.
	enabled := container.MetricSet{container.CpuUsageMetrics: struct{}{}, container.MemoryUsageMetrics: struct{}{}}
	flag.Var(&enabled, "enable_metrics", "comma-separated list of metrics to collect")
	klog.InitFlags(nil)
	flag.Parse()

	// Upstream's defaults: dynamic housekeeping, a 2-minute in-memory cache, every cgroup under "/".
	dynamic := true
	m, err := manager.New(memory.New(2*time.Minute, nil), sysfs.NewRealSysFs(),
		manager.HousekeepingConfig{Interval: manager.HousekeepingInterval, AllowDynamic: &dynamic},
		enabled, http.DefaultClient, []string{"/"}, nil, "", 0)
	if err != nil {
		log.Fatalf("cadvisor: manager: %v", err)
	}
	if err := m.Start(); err != nil {
		log.Fatalf("cadvisor: start: %v", err)
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(metrics.NewPrometheusCollector(m, nil, enabled, clock.RealClock{},
		v2.RequestOptions{IdType: v2.TypeName, Count: 1, Recursive: true}))
	http.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	log.Fatal(http.ListenAndServe(fmt.Sprintf(":%d", *port), nil))
}
