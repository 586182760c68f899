"""The services' store client: few operations in flight (FerretDB deadlocks at a hundred), unless the URL says."""

from minsheng_core.mongo import MAX_POOL_SIZE, mongo_client


async def test_operations_in_flight_are_capped_unless_the_url_sets_its_own():
    capped = mongo_client("mongodb://127.0.0.1:27017/")
    own = mongo_client("mongodb://127.0.0.1:27017/?maxPoolSize=200")
    try:
        assert capped.options.pool_options.max_pool_size == MAX_POOL_SIZE < 50
        assert own.options.pool_options.max_pool_size == 200
    finally:
        await capped.close()
        await own.close()
