# The two commands: `make run` (whole system locally) and `make test` (whole test suite).
.PHONY: run run-live stop test schemas train infra-up infra-down

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

infra-up:
	scripts/infra up

infra-down:
	scripts/infra down
