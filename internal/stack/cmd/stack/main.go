// Command stack runs the docker-compose topology without Docker (make
// stack): Kafka, ClickHouse, Alertmanager, Prometheus and `declinemon run`
// as local processes with the shipped configuration, and loadgen playing
// a day with incidents into the topic. It prints where everything is and
// runs until Ctrl-C, then stops every process.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/declinemon/declinemon/internal/chserver"
	"github.com/declinemon/declinemon/internal/stack"
)

func main() {
	chserver.Child() // the ClickHouse server is this binary re-executed
	os.Exit(run())
}

func run() int {
	speed := flag.Float64("speed", 120, "loadgen --speed: event time runs this many times faster than the clock (compose: 120)")
	loop := flag.Bool("loop", false, "after the day, play the next three hours (another fleet, incidents of the same kinds) until stopped")
	dir := flag.String("dir", "", "configurations, logs and data (default: a new temporary directory, removed at exit)")
	bin := flag.String("bin", "", "directory with prebuilt declinemon and loadgen (default: build them)")
	free := flag.Bool("free-ports", false, "always pick free ports (default: compose's 9464, 9090, 9093, 8123, 9000 when free)")
	scrape := flag.Duration("scrape-interval", 0, "Prometheus scrape interval (default: prometheus.yml's)")
	eval := flag.Duration("evaluation-interval", 0, "Prometheus rule evaluation interval (default: prometheus.yml's)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "stack: "+format+"\n", args...)
	}
	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "declinemon-stack-"); err != nil {
			logf("%v", err)
			return 1
		}
		defer os.RemoveAll(work)
	}
	ports := stack.Ports{}
	if !*free {
		ports = stack.ComposePorts
		for _, p := range []*int{&ports.Declinemon, &ports.Prometheus, &ports.Alertmanager, &ports.ClickHouseHTTP, &ports.ClickHouseTCP} {
			if !stack.PortFree(*p) {
				logf("port %d is taken: using a free one instead", *p)
				*p = 0
			}
		}
	}
	st, err := stack.Start(ctx, stack.Options{Dir: work, BinDir: *bin, Ports: ports, ScrapeInterval: *scrape, EvaluationInterval: *eval, Logf: logf})
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer func() {
		logf("stopping (loadgen, declinemon, prometheus, alertmanager, clickhouse, kafka)")
		st.Stop()
		logf("stopped")
	}()

	fmt.Printf(`
declinemon stack (compose topology, local processes) — Ctrl-C stops everything
  declinemon    http://%[1]s/alerts   http://%[1]s/metrics   /readyz /healthz
  prometheus    %[2]s   (rules: %[2]s/rules, alerts: %[2]s/alerts)
  alertmanager  %[3]s   (API: %[3]s/api/v2/alerts)
  clickhouse    http://%[4]s  native %[5]s  user %[6]s/%[7]s
                curl -s -u %[6]s:%[7]s 'http://%[4]s/' --data-binary 'SELECT kind, scope_type, scope_id, state FROM declinemon.alerts ORDER BY detected_at'
  kafka         %[8]s   topic %[9]s, group %[10]s
  webhooks      %[11]s/hooks/<receiver> (what Alertmanager notifies)
  files         %[12]s
`, st.DeclinemonAddr, st.PrometheusURL, st.AlertmanagerURL, st.ClickHouse.HTTPAddr, st.ClickHouse.TCPAddr, stack.User, stack.Password,
		st.Kafka.Addr, stack.Topic, stack.GroupID, st.Hooks.URL, work)

	// Compose starts loadgen once declinemon is healthy; by then
	// declinemon's consumer has had the broker create the topic (topic
	// auto-creation is on). loadgen produce fails on a topic that is still
	// missing (Unknown Topic Or Partition), so wait for it, and create it
	// as the broker would (4 partitions, compose's KAFKA_NUM_PARTITIONS)
	// if it does not appear.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := st.TopicExists(ctx, stack.Topic)
		if err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			logf("%s still missing 15s after declinemon started: creating it", stack.Topic)
			if err := st.Kafka.CreateTopic(ctx, stack.Topic, 4); err != nil {
				logf("%v", err)
				return 1
			}
			break
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(250 * time.Millisecond):
		}
	}
	for round := 0; ; round++ {
		day := stack.Day(round)
		spec := filepath.Join(work, "loadgen", fmt.Sprintf("day-%d.json", round))
		if err := stack.WriteSpec(spec, day); err != nil {
			logf("%v", err)
			return 1
		}
		end := day.Start.Add(time.Duration(day.Duration))
		logf("loadgen: playing %s (%s to %s event time) at --speed %g: about %s",
			day.Name, day.Start.Format("2006-01-02 15:04 -07:00"), end.Format("15:04 -07:00"), *speed,
			(time.Duration(float64(time.Duration(day.Duration)) / *speed)).Round(time.Second))
		for _, inc := range day.Incidents {
			at := day.Start.Add(time.Duration(inc.At))
			logf("  %-17s at %s for %s (wall: +%s)", inc.Type, at.Format("15:04 -07:00"), time.Duration(inc.For),
				(time.Duration(float64(time.Duration(inc.At)) / *speed)).Round(time.Second))
		}
		p, err := st.Produce(spec, *speed)
		if err != nil {
			logf("%v", err)
			return 1
		}
		select {
		case <-ctx.Done():
			return 0
		case <-p.Done():
		}
		if err := p.Wait(ctx); err != nil {
			logf("loadgen: %v", err)
			return 1
		}
		if msgs, _, err := stack.Produced(p); err == nil {
			logf("loadgen: produced %d messages of %s", msgs, day.Name)
		}
		if !*loop {
			break
		}
	}
	logf("the day is played; everything keeps running until Ctrl-C")
	<-ctx.Done()
	return 0
}
