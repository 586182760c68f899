# The two commands: `make run` (whole system locally) and `make test` (whole test suite).
.PHONY: run run-live stop test schemas train retrain evaluate bench bench-classifier bench-reports infra-up infra-down

run:            ## infrastructure and every service, on the 2020 campaign as configured
	scripts/run

run-live:       ## the same with the collection window open from today
	scripts/run --live

stop:           ## stop services and infrastructure
	scripts/stop

test:           ## the whole test suite on real RabbitMQ and FerretDB
	scripts/test

schemas:        ## regenerate docs/schemas from the event models
	uv run minsheng-schemas

train:          ## retrain the shipped campaign model from services/classifier/corpus
	uv run minsheng-classify train --data services/classifier/corpus --model var/models/campaign

retrain:        ## corpus + staff corrections from the running store; the classifier reloads the new model
	scripts/retrain

evaluate:       ## held-out categories, units, duplicate/cluster pairs and latency of the shipped model
	uv run minsheng-classify evaluate

bench:          ## raw ceilings, pipeline at rising rates, a 20,000 burst, reports at 1M: var/bench/results.md + pipeline.png
	scripts/bench

bench-classifier: ## external benchmark on ../shared/data/tipdm2020c against TF-IDF + LinearSVC
	uv run minsheng-classify benchmark

bench-reports:   ## report time from the tallies against a scan of the suggestions, at 10k, 100k and 1M stored
	scripts/infra up
	uv run minsheng-bench-reports

infra-up:
	scripts/infra up

infra-down:
	scripts/infra down
