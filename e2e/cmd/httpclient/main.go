// Command httpclient is a test peer: -n requests to -url over one
// keep-alive connection; it prints how many got which status, then keeps
// the connection open for -hold.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	url := flag.String("url", "", "what to GET")
	n := flag.Int("n", 1, "requests")
	hold := flag.Duration("hold", 0, "how long to keep the connection open after the requests")
	flag.Parse()
	tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	c := &http.Client{Transport: tr}
	codes := map[int]int{}
	for i := 0; i < *n; i++ {
		resp, err := c.Get(*url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	out, _ := json.Marshal(codes)
	fmt.Println(string(out))
	time.Sleep(*hold)
}
