package cli

import (
	"log"
	"net"
	"net/http"
	"strings"
	"time"
)

// redirectToHTTPS answers every request with 308 Permanent Redirect (which
// keeps the method and the body, unlike 301) to the same path and query
// over HTTPS: on the host the client asked for, at httpsPort, which is
// left out when it is 443. fallbackHost stands for a request without a
// Host (HTTP/1.0).
func redirectToHTTPS(httpsPort, fallbackHost string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" {
			host = fallbackHost
		}
		if httpsPort != "443" {
			host = net.JoinHostPort(host, httpsPort)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]" // an IPv6 address
		}
		hd := w.Header()
		hd.Set("Location", "https://"+host+r.URL.RequestURI())
		hd.Set("Connection", "close") // the client goes elsewhere now
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

// serveRedirect serves the redirection to the HTTPS listener https on ln,
// until stop.
func serveRedirect(ln net.Listener, https net.Addr, errorLog *log.Logger) (stop func()) {
	_, port, _ := net.SplitHostPort(https.String())
	host, _, _ := net.SplitHostPort(displayAddr(https))
	srv := &http.Server{
		Handler:           redirectToHTTPS(port, host),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          errorLog,
	}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }
}
