// Command ferretdb-embedded runs FerretDB 1.x in-process with the SQLite backend,
// so that the project has a MongoDB-compatible store without a Docker engine.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("data", "", "directory for the SQLite files (created if missing)")
	flag.Parse()

	if *dir == "" {
		log.Fatal("-data is required")
	}
	if err := os.MkdirAll(*dir, 0o750); err != nil {
		log.Fatalf("cannot create data directory %s: %v", *dir, err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		log.Fatalf("cannot configure FerretDB: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log.Printf("FerretDB listening on %s, data in %s", *addr, *dir)
	f.Run(ctx)
}
