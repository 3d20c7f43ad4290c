// Command httpfloor measures what Go's net/http costs per request before a
// hub does anything: a server whose handler parses a publication's form and
// answers an ID, under the load herald bench puts on a hub when it
// publishes (keep-alive connections, each posting one request at a time).
// It prints the requests a second and the server's CPU time per request,
// read from /proc. The server runs in a process of its own, like a hub.
//
//	go run ./cmd/httpfloor -publishers 16 -requests 80000
//
// With -server minimal the server is instead a hand-written HTTP/1.1 loop,
// a goroutine per connection that reads a request line, headers and a body
// of Content-Length bytes and answers with fixed bytes: what a Go server
// costs per request when it does nearly nothing but read and write. It
// handles only the requests this command sends and is no model for a real
// server.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-sse/herald/internal/bench"
)

func main() {
	serve := flag.String("serve", "", "run the server on this address (used by the command itself)")
	publishers := flag.Int("publishers", 16, "concurrent publishers, each on its own connection")
	requests := flag.Int("requests", 80000, "requests in all")
	rounds := flag.Int("rounds", 3, "runs, each with a fresh server; the median is printed last")
	kind := flag.String("server", "net/http", "the server: net/http, or minimal for a hand-written HTTP/1.1 loop")
	flag.Parse()
	if *kind != "net/http" && *kind != "minimal" {
		log.Fatalf("-server: %q is neither net/http nor minimal", *kind)
	}
	if *serve != "" {
		if *kind == "minimal" {
			minimalServer(*serve)
		} else {
			server(*serve)
		}
		return
	}
	var rates, cpus []float64
	for r := range *rounds {
		rate, cpu, err := run(*kind, *publishers, *requests)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("round %d: %.0f requests/s, server CPU %.1f µs per request\n", r+1, rate, cpu)
		rates, cpus = append(rates, rate), append(cpus, cpu)
	}
	fmt.Printf("median of %d: %.0f requests/s, server CPU %.1f µs per request\n", *rounds, median(rates), median(cpus))
}

func server(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("topic") == "" {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "urn:uuid:0196a3e1-1111-7222-8333-444455556666")
	})))
}

// answer is the minimal server's response, the same bytes net/http sends
// but for its Date header.
var answer = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 45\r\n\r\nurn:uuid:0196a3e1-1111-7222-8333-444455556666")

func minimalServer(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go minimalConn(c)
	}
}

// minimalConn answers the POSTs of one keep-alive connection until the
// client closes it or sends anything else.
func minimalConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	var body []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil || !bytes.HasPrefix(line, []byte("POST ")) {
			return
		}
		n := -1
		for {
			h, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(bytes.TrimSpace(h)) == 0 {
				break
			}
			if name, value, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(name, []byte("Content-Length")) {
				n, _ = strconv.Atoi(string(bytes.TrimSpace(value)))
			}
		}
		if n < 0 || n > 1<<20 {
			return
		}
		body = slices.Grow(body[:0], n)[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		if form, err := url.ParseQuery(string(body)); err != nil || form.Get("topic") == "" {
			return
		}
		if _, err := c.Write(answer); err != nil {
			return
		}
	}
}

func run(kind string, publishers, requests int) (rate, cpuPerRequest float64, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "-serve", addr, "-server", kind)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if _, err := out.Read(make([]byte, 6)); err != nil {
		return 0, 0, fmt.Errorf("the server did not start: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: publishers}}
	url := "http://" + addr + "/.well-known/mercure"
	body := "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=%7B%22price%22%3A+12.5%7D"
	cpu0, err := bench.ProcCPU(cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		n := requests / publishers
		if p < requests%publishers {
			n++
		}
		wg.Go(func() {
			for range n {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdfX0.c2lnbmF0dXJlLW5vdC1jaGVja2Vk")
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	cpu1, err := bench.ProcCPU(cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	return float64(requests) / elapsed.Seconds(), (cpu1 - cpu0).Seconds() / float64(requests) * 1e6, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
