// Package webui is jetflow's web UI: static pages (HTML, CSS and plain JavaScript, embedded in
// the binary, no build step and nothing fetched from elsewhere) that talk to the HTTP API of
// package httpapi from the browser. `jetflow dev` and `jetflow api` serve it under Path beside
// the API.
//
// Every page has its own URL, so links can be shared:
//
//	/ui/                    instances: filters, search by ID prefix, paging, live counts by status
//	/ui/instances/{id}      one instance: status, actions (raise event, terminate, suspend,
//	                        resume, rewind, restart, purge) and its history as a timeline
//	/ui/dead-letters        dead-lettered messages with their reasons
//
// The pages themselves hold no data and need no key. When the API requires a key, the user
// enters it on the page; it is kept in the tab's sessionStorage and sent in the
// x-functions-key header of every API request.
package webui

import (
	"embed"
	"io/fs"
	"net/http"
)

// Path is where the UI is served; mount Handler at Path and at PathNoSlash.
const (
	Path        = "/ui/"
	PathNoSlash = "/ui"
)

//go:embed assets
var assets embed.FS

// Handler serves the UI: the assets under /ui/static/, the page shell (index.html) for every
// other path under /ui/ (the script renders the page the path names), and a redirect from /ui.
func Handler() http.Handler {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic("webui: the embedded assets are missing: " + err.Error()) // a build error, not input
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+Path+"static/", http.StripPrefix(Path+"static/", http.FileServerFS(files)))
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, files, "index.html")
	})
	mux.Handle("GET "+PathNoSlash, http.RedirectHandler(Path, http.StatusMovedPermanently))
	return secured(mux)
}

// secured sets the headers that keep the pages from running anything but their own script and
// from being framed, and asks browsers to revalidate (the assets change with the binary).
func secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
