// Command loadgen generates synthetic POS fleets' transaction attempts with
// injected incidents, and scores the detectors on them.
//
//	loadgen list
//	loadgen generate --scenario NAME [--out events.jsonl[.gz]] [--truth truth.json] [--seed N] [--terminals N]
//	loadgen generate --spec scenario.json ...
//	loadgen score [--scenario NAME] [--config FILE]
package main

import (
	"os"

	"github.com/declinemon/declinemon/alerting/scenario"
)

func main() {
	os.Exit(scenario.Main(os.Args[1:], os.Stdout, os.Stderr))
}
