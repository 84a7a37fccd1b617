// Command loadgen generates synthetic POS fleets' transaction attempts with
// injected incidents, and scores the detectors on them.
//
//	loadgen list
//	loadgen generate --scenario NAME [--out events.jsonl[.gz]] [--truth truth.json] [--seed N] [--terminals N]
//	loadgen generate --spec scenario.json ...
//	loadgen produce --scenario NAME [--brokers HOST:PORT,...] [--topic T] [--speed N]
//	loadgen score [--scenario NAME] [--config FILE]
//	loadgen help [COMMAND]
//
// Every command takes -h/--help (usage on stdout, exit 0). Exit codes: 0
// ok, 1 failure, 2 usage error.
package main

import (
	"os"

	"github.com/declinemon/declinemon/alerting/scenario"
)

func main() {
	os.Exit(scenario.Main(os.Args[1:], os.Stdout, os.Stderr))
}
