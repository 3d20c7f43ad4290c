package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/web"
)

// The page beside a hub, as herald serve mounts it: the hub keeps its
// path and subtree, the page takes the rest.
func Example() {
	h, err := hub.New(hub.Config{Anonymous: true})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	mux := http.NewServeMux()
	mux.Handle(hub.Path, h)
	mux.Handle(hub.Path+"/", h)
	mux.Handle("/", web.Handler(web.Config{Anonymous: true}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/", "/debugger", "/assets/common.js", "/nope"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Output:
	// / 200 text/html; charset=utf-8
	// /debugger 200 text/html; charset=utf-8
	// /assets/common.js 200 text/javascript; charset=utf-8
	// /nope 404 application/json
}
