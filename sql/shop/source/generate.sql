-- Add one batch of shop activity. Parameter (psycopg, bound client-side): %(rows)s =
-- orders to add. Deterministic (no random()), set-based, runs in the seeder's
-- transaction after schema.sql.
--
-- First call: 200 customers and 40 products. Every call: %(rows)s new orders and a
-- delivery for four orders in five (every 25th delivery without a location). Later
-- calls also touch every 20th customer (new city, updated_at = now()).

UPDATE public.customers
SET city = (ARRAY['Lisboa', 'Porto', 'Braga', 'Faro', 'Coimbra'])[1 + mod(customer_id + 1, 5)],
    updated_at = now()
WHERE mod(customer_id, 20) = 0;

INSERT INTO public.customers (customer_id, email, name, city)
SELECT
    i,
    'customer' || i || '@example.com',
    (ARRAY['Ana', 'Rui', 'Marta', 'João', 'Inês', 'Tiago', 'Sofia'])[1 + mod(i, 7)] || ' ' || i,
    (ARRAY['Lisboa', 'Porto', 'Braga', 'Faro', 'Coimbra'])[1 + mod(i, 5)]
FROM generate_series(1, 200) AS i
ON CONFLICT (customer_id) DO NOTHING;

INSERT INTO public.products (product_id, sku, name, price, weight_kg)
SELECT
    i,
    'SKU-' || lpad(i::text, 5, '0'),
    (ARRAY['Kettle', 'Lamp', 'Chair', 'Mug', 'Rug', 'Clock', 'Shelf', 'Vase'])[1 + mod(i, 8)] || ' ' || i,
    (5 + mod(i * 37, 200))::numeric(10, 2) + 0.99,
    CASE WHEN mod(i, 9) = 0 THEN NULL ELSE (0.2 + mod(i * 13, 50) / 10.0)::numeric(8, 3) END
FROM generate_series(1, 40) AS i
ON CONFLICT (product_id) DO NOTHING;

-- ordered_at is the app's clock: up to a day behind the moment the row is written.
INSERT INTO public.orders (customer_id, product_id, quantity, amount, ordered_at)
SELECT
    1 + mod(n * 7, 200),
    p.product_id,
    1 + mod(n, 5),
    (1 + mod(n, 5)) * p.price,
    now() - make_interval(secs => mod(n * 37, 86400))
FROM generate_series(1, %(rows)s) AS n
JOIN public.products AS p ON p.product_id = 1 + mod(n * 13, 40);

INSERT INTO public.deliveries (order_id, courier, location, delivered_at)
SELECT
    o.order_id,
    (ARRAY['Bruno', 'Carla', 'Diogo', NULL])[1 + mod(o.order_id, 4)::integer],
    CASE
        WHEN mod(o.order_id, 25) = 0 THEN NULL
        ELSE ST_SetSRID(
            ST_MakePoint(-9.25 + mod(o.order_id * 17, 1000) / 4000.0, 38.69 + mod(o.order_id * 29, 1000) / 5000.0),
            4326
        )
    END,
    o.ordered_at + make_interval(mins => 30 + mod(o.order_id, 240)::integer)
FROM public.orders AS o
WHERE mod(o.order_id, 5) <> 0
  AND NOT EXISTS (SELECT FROM public.deliveries AS d WHERE d.order_id = o.order_id)
ORDER BY o.order_id;
