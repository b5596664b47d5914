package scenario_test

import (
	"context"
	"fmt"
	"os"

	"github.com/syncgate/syncgate/loadtest/scenario"
)

// Run one scenario and print its report as Markdown; plots go to a folder.
// (Not run as a test: a scenario takes seconds to minutes.)
func ExampleRun() {
	rep, err := scenario.Run(context.Background(), "memory", scenario.Options{Short: true, Progress: os.Stderr})
	if err != nil {
		fmt.Println(err)
		return
	}
	plots, err := scenario.WritePlots(rep, "docs/bench", "svg")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(scenario.Markdown(rep, plots))
}

// Every comparison is a ratio to a floor measured in the same run.
func ExampleComparisonTable() {
	fmt.Print(scenario.ComparisonTable(scenario.Comparison{
		What: "gateway, 64 workers: throughput", Value: 9000, Unit: "req/s",
		Floor: "direct, 64 workers: throughput", FloorValue: 12000, Ratio: 0.75,
	}))
	// Output:
	// | figure | value | floor (same run) | floor value | ratio | aim | met |
	// |---|---:|---|---:|---:|---|---|
	// | gateway, 64 workers: throughput | 9000 req/s | direct, 64 workers: throughput | 12000 req/s | 0.75 |  |  |
}
