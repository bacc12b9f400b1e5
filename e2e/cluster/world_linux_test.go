package cluster_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratanet/strata/e2e/cluster"
)

// TestWorld: a pod of a Deployment resolves external names with the
// cluster's DNS (libc and Go alike: getent, tcpclient, a raw query),
// follows a CNAME chain, gets NXDOMAIN for unknown names, talks to a server
// on an external host by name, and is reached back by that host; and when
// the cluster stops, none of its namespaces, processes or resolver files
// remain.
func TestWorld(t *testing.T) {
	var prefix string   // the lab's namespaces start with it
	var inodes []uint32 // network namespaces whose processes must all end
	t.Run("cluster", func(t *testing.T) {
		c := cluster.Start(t)
		twilio := c.External("api.twilio.com", "10.250.1.10",
			filepath.Join(bin, "tcpserver"), "-listen", ":443", "-request", "10", "-reply", "20")
		stripe := c.External("api.stripe.com", "10.250.1.20",
			filepath.Join(bin, "tcpserver"), "-listen", ":443", "-request", "30", "-reply", "40")
		c.DNS.A("edge.example.net", "10.250.2.20")
		c.DNS.CNAME("cdn.example.com", "edge.example.net")
		twilio.WaitListen(443)
		stripe.WaitListen(443)
		prefix, _, _ = strings.Cut(twilio.NS, "-")
		inodes = append(inodes, twilio.NetnsInode(), stripe.NetnsInode(), c.DNS.Host.NetnsInode())

		c.Apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: caller, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: caller}}
  template:
    metadata: {labels: {app: caller}}
    spec:
      containers:
      - name: app
        image: local/tcpserver
        command: [%q, "-listen", ":8080", "-request", "5", "-reply", "6"]
`, filepath.Join(bin, "tcpserver")))
		pods := c.WaitRunning("default", "app=caller", 1)
		pod := c.PodHost(pods[0])
		if pod == nil {
			t.Fatal("the kubelet does not know its own pod")
		}
		inodes = append(inodes, pod.NetnsInode())
		pod.WaitListen(8080)

		t.Run("the pod's resolv.conf names the DNS", func(t *testing.T) {
			out, err := pod.Run("cat", "/etc/resolv.conf")
			if want := "nameserver 10.250.0.53\noptions timeout:1 attempts:2\n"; err != nil || out != want {
				t.Fatalf("resolv.conf in the pod = %q (%v), want %q", out, err, want)
			}
		})

		t.Run("libc resolves external names and the CNAME chain", func(t *testing.T) {
			for name, want := range map[string]string{
				"api.twilio.com":  "10.250.1.10     STREAM api.twilio.com\n10.250.1.10     DGRAM  \n10.250.1.10     RAW    \n",
				"api.stripe.com":  "10.250.1.20     STREAM api.stripe.com\n10.250.1.20     DGRAM  \n10.250.1.20     RAW    \n",
				"cdn.example.com": "10.250.2.20     STREAM edge.example.net\n10.250.2.20     DGRAM  \n10.250.2.20     RAW    \n",
			} {
				if out, err := pod.Run("getent", "ahostsv4", name); err != nil || out != want {
					t.Errorf("getent ahostsv4 %s = %q (%v), want %q", name, out, err, want)
				}
			}
			cmd := exec.Command("ip", "netns", "exec", pod.NS, "getent", "ahostsv4", "nosuch.example.com")
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 || len(out) != 0 {
				t.Errorf("getent ahostsv4 nosuch.example.com = %q, exit %d, want nothing, exit 2 (not found)", out, code)
			}
		})

		t.Run("answers, TTLs and NXDOMAIN exactly", func(t *testing.T) {
			out, err := pod.Run(filepath.Join(bin, "dnsquery"), "api.twilio.com", "cdn.example.com", "nosuch.example.com")
			want := `{"name":"api.twilio.com","type":"A","rcode":"NOERROR","answers":[{"name":"api.twilio.com.","type":"A","ttl":5,"data":"10.250.1.10"}]}
{"name":"cdn.example.com","type":"A","rcode":"NOERROR","answers":[{"name":"cdn.example.com.","type":"CNAME","ttl":5,"data":"edge.example.net."},{"name":"edge.example.net.","type":"A","ttl":5,"data":"10.250.2.20"}]}
{"name":"nosuch.example.com","type":"A","rcode":"NXDOMAIN","answers":[]}
`
			if err != nil || out != want {
				t.Fatalf("dnsquery in the pod:\n%s(%v)\nwant:\n%s", out, err, want)
			}
		})

		t.Run("the pod talks to the external servers by name", func(t *testing.T) {
			for addr, want := range map[string]string{
				"api.twilio.com:443": `{"ok":3,"failed":0,"errors":[],"sent":30,"received":60}`,
				"api.stripe.com:443": `{"ok":3,"failed":0,"errors":[],"sent":90,"received":120}`,
			} {
				send, expect := "10", "20"
				if strings.HasPrefix(addr, "api.stripe") {
					send, expect = "30", "40"
				}
				out, err := pod.Run(filepath.Join(bin, "tcpclient"), "-connect", addr, "-count", "3", "-send", send, "-expect", expect)
				if err != nil || counts(out) != want {
					t.Errorf("tcpclient to %s = %s (%v), want %s", addr, out, err, want)
				}
			}
		})

		t.Run("an external host reaches the pod back", func(t *testing.T) {
			out, err := twilio.Run(filepath.Join(bin, "tcpclient"), "-connect", pods[0].Status.PodIP+":8080", "-send", "5", "-expect", "6")
			if want := `{"ok":1,"failed":0,"errors":[],"sent":5,"received":6}`; err != nil || counts(out) != want {
				t.Fatalf("tcpclient from api.twilio.com to the pod = %s (%v), want %s", out, err, want)
			}
		})

		t.Run("the DNS logged the pod's questions", func(t *testing.T) {
			log := c.DNS.Log()
			for _, want := range []string{
				"query[A] api.twilio.com from " + pods[0].Status.PodIP,
				"config nosuch.example.com is NXDOMAIN",
			} {
				if !strings.Contains(log, want) {
					t.Errorf("dnsmasq log lacks %q:\n%s", want, log)
				}
			}
		})
	})
	if prefix == "" {
		return // the cluster did not come up; its own test said why
	}

	t.Run("nothing remains", func(t *testing.T) {
		if ns, err := exec.Command("ip", "netns", "list").Output(); err != nil || strings.Contains(string(ns), prefix+"-") {
			t.Errorf("namespaces of the lab remain (%v):\n%s", err, ns)
		}
		if dirs, _ := filepath.Glob("/etc/netns/" + prefix + "-*"); len(dirs) != 0 {
			t.Errorf("resolver files remain: %v", dirs)
		}
		procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
		for _, p := range procs {
			var st unix.Stat_t
			if unix.Stat(p, &st) != nil {
				continue
			}
			for _, ino := range inodes {
				if uint32(st.Ino) == ino {
					cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(p)), "cmdline"))
					t.Errorf("process %s still runs in a lab namespace: %q", p, cmdline)
				}
			}
		}
	})
}

// counts is tcpclient's result without its duration, which no run repeats.
func counts(out string) string {
	return seconds.ReplaceAllString(strings.TrimSpace(out), "")
}

var seconds = regexp.MustCompile(`,"seconds":[-+.0-9eE]+`)
