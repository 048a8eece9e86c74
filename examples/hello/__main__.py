import asyncio

from examples.hello.app import main

asyncio.run(main())
