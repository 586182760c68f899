// Command ferretdb-embedded runs FerretDB 1.x in-process with the SQLite backend,
// so that the project has a MongoDB-compatible store without a Docker engine.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	_ "net/http/pprof" // served only when -pprof is given
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("data", "", "directory for the SQLite files (created if missing)")
	// SQLite's synchronous mode in WAL: "normal" syncs at checkpoints, not on every commit; a commit survives the
	// process being killed (the fault tests do that), only a power cut may lose the last ones. This store serves
	// development, tests and benchmarks; production runs MongoDB with its journal. "full" syncs every commit.
	sync := flag.String("sync", "normal", `SQLite synchronous mode: "normal" or "full"`)
	pprof := flag.String("pprof", "", "address to serve Go's profiler on (benchmarks: where the database spends its time)")
	flag.Parse()
	if *pprof != "" {
		go func() { log.Print(http.ListenAndServe(*pprof, nil)) }()
	}

	if *dir == "" {
		log.Fatal("-data is required")
	}
	if *sync != "normal" && *sync != "full" {
		log.Fatalf("-sync must be normal or full, got %q", *sync)
	}
	if err := os.MkdirAll(*dir, 0o750); err != nil {
		log.Fatalf("cannot create data directory %s: %v", *dir, err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/?_pragma=synchronous(" + *sync + ")",
	})
	if err != nil {
		log.Fatalf("cannot configure FerretDB: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	go indexIDLookups(ctx, *dir, time.Second)

	log.Printf("FerretDB listening on %s, data in %s", *addr, *dir)
	f.Run(ctx)
}
