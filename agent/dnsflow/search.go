package dnsflow

import (
	"slices"
	"strings"
)

// Search-path expansions. A resolver with a search list (ndots:5 in every
// pod) tries api.twilio.com.shop.svc.cluster.local, .svc.cluster.local and
// .cluster.local before api.twilio.com itself: NXDOMAIN answers the
// application never sees. Counted one by one under their own names they
// would fill the qname budget and flood dns_error events, so:
//   - a suffix is learned as a search suffix when one client (namespace and
//     process) asks for B and gets NXDOMAIN for B.S, in either order;
//   - an NXDOMAIN answer for a name under a learned suffix is counted under
//     "*.S" (one qname value per suffix) and sends no event;
//   - an NXDOMAIN answer that may still turn out to be an expansion waits
//     (Options.ExpansionWait) for the client's next question; if none
//     shows it was one, it is counted as it is, with its event.
// The answer the application gets (the last name tried) is never folded
// unless it too lies under a learned suffix.

// asker is a client process in its namespace: expansions come from the
// one resolver call.
type asker struct {
	netns uint32
	pid   uint32
}

// asked is a name a client asked for, and when.
type asked struct {
	name string
	at   uint64
}

// held is an NXDOMAIN answer waiting to be told an expansion or not.
type held struct {
	k   client
	q   query
	end uint64
}

// askedPerClient: names remembered per client, the latest; a resolver
// tries a handful of search names per lookup.
const askedPerClient = 16

// maxSuffixes bounds the learned suffixes (a cluster has one per
// namespace, plus the nodes' own).
const maxSuffixes = 1024

// noteAsked remembers a question and settles the client's held answers
// it shows to be expansions.
func (t *Table) noteAsked(a asker, name string, at uint64) {
	if t.opts.ExpansionWait <= 0 {
		return
	}
	list := t.asked[a]
	if list == nil && len(t.asked) >= t.opts.MaxPending {
		return
	}
	if len(list) == askedPerClient {
		list = list[1:]
	}
	t.asked[a] = append(list, asked{name, at})
	hs := t.held[a]
	if len(hs) == 0 {
		return
	}
	for _, h := range hs {
		if s, ok := under(h.q.name, name); ok {
			t.learn(s, at)
		}
	}
	t.settle(a, false)
}

// nxdomain takes an NXDOMAIN answer: folded at once under a learned
// suffix, or held.
func (t *Table) nxdomain(k client, q query, end uint64) {
	if t.opts.ExpansionWait <= 0 {
		t.complete(k, q, "NXDOMAIN", end, "")
		return
	}
	if s := t.suffixOf(q.name, end); s != "" {
		t.complete(k, q, "NXDOMAIN", end, s)
		return
	}
	a := asker{k.netns, q.pid}
	// Asked before under a shorter name: an expansion tried after the
	// name itself (a name with ndots dots or more).
	for _, b := range t.asked[a] {
		if s, ok := under(q.name, b.name); ok {
			t.learn(s, end)
			t.complete(k, q, "NXDOMAIN", end, s)
			return
		}
	}
	if t.nheld >= t.opts.MaxPending {
		t.complete(k, q, "NXDOMAIN", end, "")
		return
	}
	t.held[a] = append(t.held[a], held{k, q, end})
	t.nheld++
}

// settle completes a's held answers: those under a learned suffix folded,
// the others as they are if all is set, else kept.
func (t *Table) settle(a asker, all bool) {
	hs := t.held[a]
	keep := hs[:0]
	for _, h := range hs {
		if s := t.suffixOf(h.q.name, h.end); s != "" {
			t.complete(h.k, h.q, "NXDOMAIN", h.end, s)
		} else if all {
			t.complete(h.k, h.q, "NXDOMAIN", h.end, "")
		} else {
			keep = append(keep, h)
			continue
		}
		t.nheld--
	}
	if len(keep) == 0 {
		delete(t.held, a)
		return
	}
	t.held[a] = keep
}

// tickSearch ends the waits past ExpansionWait and forgets old questions.
// A wait is measured on the records' clock, which the agent may read late
// (a busy node, records held for names): the next question may already be
// in the kernel's ring, so the wait also allows the delivery slack.
func (t *Table) tickSearch(now uint64) {
	wait := uint64(t.opts.ExpansionWait + deliverySlack)
	for a, hs := range t.held {
		if now > hs[0].end && now-hs[0].end >= wait {
			// The oldest decides: answers of one lookup come together.
			t.settle(a, true)
		}
	}
	for a, list := range t.asked {
		i := 0
		for i < len(list) && now > list[i].at && now-list[i].at > uint64(t.opts.Timeout) {
			i++
		}
		if i == len(list) {
			delete(t.asked, a)
		} else if i > 0 {
			t.asked[a] = slices.Clone(list[i:])
		}
	}
	if t.opts.QnameIdle > 0 {
		for s, last := range t.suffixes {
			if now > last && now-last > uint64(t.opts.QnameIdle) {
				delete(t.suffixes, s)
			}
		}
	}
}

// learn keeps s as a search suffix.
func (t *Table) learn(s string, at uint64) {
	if _, ok := t.suffixes[s]; !ok && len(t.suffixes) >= maxSuffixes {
		return
	}
	t.suffixes[s] = at
}

// suffixOf is the longest learned suffix name lies under, or "".
func (t *Table) suffixOf(name string, at uint64) string {
	for i := strings.IndexByte(name, '.'); i >= 0; {
		s := name[i+1:]
		if _, ok := t.suffixes[s]; ok {
			t.suffixes[s] = max(t.suffixes[s], at)
			return s // the first found from the left is the longest
		}
		j := strings.IndexByte(s, '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return ""
}

// under says whether name is base.S for some non-empty S, and S.
func under(name, base string) (string, bool) {
	if len(name) > len(base)+1 && name[len(base)] == '.' && strings.HasPrefix(name, base) {
		return name[len(base)+1:], true
	}
	return "", false
}
