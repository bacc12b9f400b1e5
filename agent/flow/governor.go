package flow

import (
	"strconv"

	"github.com/stratanet/strata/identity"
)

// Other replaces label values beyond their budget.
const Other = "~other"

// Budgets caps the distinct values per label and the number of series keys.
type Budgets struct {
	Labels map[string]int // label name -> distinct values
	Flows  int            // distinct label sets per metric family
}

// DefaultBudgets suit one node: generous for real services, tight enough
// that a scan of random ports or a flood of names cannot grow memory.
func DefaultBudgets() Budgets {
	return Budgets{
		Labels: map[string]int{
			"source_namespace":      200,
			"source_workload":       1000,
			"destination_namespace": 200,
			"destination_workload":  1000,
			"destination_service":   1000,
			"destination_port":      200,
		},
		Flows: 20000,
	}
}

// Key is a series' identity labels after the governor.
type Key struct {
	SourceNamespace, SourceWorkload                               string
	DestinationNamespace, DestinationWorkload, DestinationService string
	DestinationPort, Reporter                                     string
}

// Values are the label values in KeyLabels order.
func (k Key) Values() []string {
	return []string{k.SourceNamespace, k.SourceWorkload, k.DestinationNamespace,
		k.DestinationWorkload, k.DestinationService, k.DestinationPort, k.Reporter}
}

// KeyLabels are the identity label names every per-connection series has.
var KeyLabels = []string{"source_namespace", "source_workload", "destination_namespace",
	"destination_workload", "destination_service", "destination_port", "reporter"}

// governor folds values beyond a label's budget into Other and counts them.
type governor struct {
	budgets  Budgets
	seen     map[string]map[string]struct{}
	overflow map[string]uint64
}

func newGovernor(b Budgets) *governor {
	return &governor{budgets: b, seen: map[string]map[string]struct{}{}, overflow: map[string]uint64{}}
}

func (g *governor) fold(label, v string) string {
	limit, ok := g.budgets.Labels[label]
	if !ok || v == "" {
		return v
	}
	set := g.seen[label]
	if set == nil {
		set = map[string]struct{}{}
		g.seen[label] = set
	}
	if _, ok := set[v]; ok {
		return v
	}
	if len(set) >= limit {
		g.overflow[label]++
		return Other
	}
	set[v] = struct{}{}
	return v
}

func (g *governor) key(p identity.Pair) Key {
	return Key{
		SourceNamespace:      g.fold("source_namespace", p.Source.Namespace),
		SourceWorkload:       g.fold("source_workload", p.Source.Name),
		DestinationNamespace: g.fold("destination_namespace", p.Destination.Namespace),
		DestinationWorkload:  g.fold("destination_workload", p.Destination.Name),
		DestinationService:   g.fold("destination_service", p.Destination.Service),
		DestinationPort:      g.fold("destination_port", strconv.Itoa(int(p.Port))),
		Reporter:             string(p.Reporter),
	}
}

// reset forgets the values seen (not the overflow counts): the table then
// marks those of its remaining series again.
func (g *governor) reset() { clear(g.seen) }

// mark records k's values as in use.
func (g *governor) mark(k Key) {
	for i, v := range k.Values() {
		if v != Other && KeyLabels[i] != "reporter" {
			g.fold(KeyLabels[i], v)
		}
	}
}

// overflowKey is where whole flows go once the table is full.
func overflowKey(r identity.Reporter) Key {
	return Key{SourceWorkload: Other, DestinationWorkload: Other, DestinationPort: Other, Reporter: string(r)}
}
