import asyncio

from bench.ingest.run import main

asyncio.run(main())
